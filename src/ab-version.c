/* Version precedence (ab-version.h): SemVer 2.0.0, and a natural-order
 * fallback for versions that are not SemVer.
 *
 * Strings are never copied: a parsed version is a set of spans into the
 * string, and numbers are compared as digit strings (length first), so a
 * number of any size compares right without converting it. */
#include "config.h"
#include "ab-version.h"

#include <string.h>

typedef struct
{
  const char *p;
  gsize len;
} Span;

/* A SemVer version: MAJOR.MINOR.PATCH and the pre-release identifiers
 * (PRE.len 0 when it has none). Build metadata is checked, then dropped. */
typedef struct
{
  Span core[3];
  Span pre;
} SemVer;

static gboolean
is_ident_char (char c)
{
  return g_ascii_isalnum (c) || c == '-';
}

static gboolean
all_digits (Span s)
{
  for (gsize i = 0; i < s.len; i++)
    if (!g_ascii_isdigit (s.p[i]))
      return FALSE;
  return TRUE;
}

/* A SemVer numeric identifier: 0, or digits without a leading zero. */
static gboolean
is_numeric_ident (Span s)
{
  return s.len > 0 && all_digits (s) && (s.len == 1 || s.p[0] != '0');
}

/* Dot-separated identifiers, none empty, each of [0-9A-Za-z-]; with
 * PRE, an identifier of digits only is a numeric identifier. */
static gboolean
check_idents (Span s, gboolean pre)
{
  gsize start = 0;
  for (gsize i = 0; i <= s.len; i++)
    {
      if (i < s.len && s.p[i] != '.')
        {
          if (!is_ident_char (s.p[i]))
            return FALSE;
          continue;
        }
      Span id = { s.p + start, i - start };
      if (id.len == 0 || (pre && all_digits (id) && !is_numeric_ident (id)))
        return FALSE;
      start = i + 1;
    }
  return TRUE;
}

/* MAJOR.MINOR.PATCH of S into OUT. */
static gboolean
parse_core (Span s, Span out[3])
{
  int n = 0;
  gsize start = 0;
  for (gsize i = 0; i <= s.len; i++)
    {
      if (i < s.len && s.p[i] != '.')
        continue;
      if (n == 3)
        return FALSE;
      out[n] = (Span) { s.p + start, i - start };
      if (!is_numeric_ident (out[n++]))
        return FALSE;
      start = i + 1;
    }
  return n == 3;
}

static gboolean
parse_semver (const char *v, SemVer *out)
{
  if (v == NULL)
    return FALSE;
  gsize len = strlen (v);
  const char *plus = memchr (v, '+', len);
  if (plus != NULL)
    {
      Span build = { plus + 1, len - (gsize) (plus + 1 - v) };
      if (!check_idents (build, FALSE))
        return FALSE;
      len = (gsize) (plus - v);
    }
  const char *dash = memchr (v, '-', len);
  Span core = { v, dash ? (gsize) (dash - v) : len };
  out->pre = dash ? (Span) { dash + 1, len - core.len - 1 } : (Span) { NULL, 0 };
  if (dash && !check_idents (out->pre, TRUE))
    return FALSE;
  return parse_core (core, out->core);
}

gboolean
ab_version_is_semver (const char *v)
{
  SemVer sv;
  return parse_semver (v, &sv);
}

static int
sign (int c)
{
  return (c > 0) - (c < 0);
}

/* Digit strings as numbers: leading zeros skipped, then the longer is
 * larger, then byte order. */
static int
compare_numbers (Span a, Span b)
{
  while (a.len > 1 && a.p[0] == '0')
    a.p++, a.len--;
  while (b.len > 1 && b.p[0] == '0')
    b.p++, b.len--;
  if (a.len != b.len)
    return a.len < b.len ? -1 : 1;
  return sign (memcmp (a.p, b.p, a.len));
}

/* ASCII order; a prefix ranks lower. */
static int
compare_bytes (Span a, Span b)
{
  int c = memcmp (a.p, b.p, MIN (a.len, b.len));
  if (c != 0)
    return sign (c);
  return a.len == b.len ? 0 : (a.len < b.len ? -1 : 1);
}

/* One pre-release identifier: numeric below alphanumeric. */
static int
compare_ident (Span a, Span b)
{
  gboolean na = all_digits (a), nb = all_digits (b);
  if (na && nb)
    return compare_numbers (a, b);
  if (na != nb)
    return na ? -1 : 1;
  return compare_bytes (a, b);
}

/* The next dot-separated identifier of *REST into OUT; FALSE at the end. */
static gboolean
next_ident (Span *rest, Span *out)
{
  if (rest->p == NULL)
    return FALSE;
  const char *dot = memchr (rest->p, '.', rest->len);
  out->p = rest->p;
  out->len = dot ? (gsize) (dot - rest->p) : rest->len;
  if (dot)
    *rest = (Span) { dot + 1, rest->len - out->len - 1 };
  else
    *rest = (Span) { NULL, 0 };
  return TRUE;
}

/* Pre-release fields: none ranks above some; then field by field; then
 * more fields rank higher. */
static int
compare_pre (Span a, Span b)
{
  if (a.p == NULL || b.p == NULL)
    return a.p == b.p ? 0 : (a.p == NULL ? 1 : -1);
  Span ia, ib;
  for (;;)
    {
      gboolean has_a = next_ident (&a, &ia), has_b = next_ident (&b, &ib);
      if (!has_a || !has_b)
        return has_a == has_b ? 0 : (has_a ? 1 : -1);
      int c = compare_ident (ia, ib);
      if (c != 0)
        return c;
    }
}

static int
compare_semver (const SemVer *a, const SemVer *b)
{
  for (int i = 0; i < 3; i++)
    {
      int c = compare_numbers (a->core[i], b->core[i]);
      if (c != 0)
        return c;
    }
  return compare_pre (a->pre, b->pre);
}

/* The run of digits or of non-digits at the start of S. */
static Span
run_at (const char *s)
{
  gboolean digits = g_ascii_isdigit (*s);
  gsize n = 0;
  while (s[n] && !!g_ascii_isdigit (s[n]) == digits)
    n++;
  return (Span) { s, n };
}

static int
compare_fallback (const char *a, const char *b)
{
  while (*a && *b)
    {
      Span ra = run_at (a), rb = run_at (b);
      int c = compare_ident (ra, rb);
      if (c != 0)
        return c;
      a += ra.len;
      b += rb.len;
    }
  return *a ? 1 : (*b ? -1 : 0);
}

int
ab_version_compare (const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return a == b ? 0 : (a == NULL ? -1 : 1);
  SemVer sa, sb;
  gboolean is_a = parse_semver (a, &sa), is_b = parse_semver (b, &sb);
  if (is_a && is_b)
    return compare_semver (&sa, &sb);
  if (is_a != is_b)
    return is_a ? 1 : -1;
  return compare_fallback (a, b);
}

int
ab_version_order (const char *a, const char *b)
{
  int c = ab_version_compare (a, b);
  if (c != 0 || a == NULL || b == NULL)
    return c;
  return sign (strcmp (a, b));
}

/* MAJOR and MINOR: SemVer's, or the leading DIGITS.DIGITS of another
 * version. */
static gboolean
major_minor (const char *v, Span *major, Span *minor)
{
  SemVer sv;
  if (parse_semver (v, &sv))
    {
      *major = sv.core[0];
      *minor = sv.core[1];
      return TRUE;
    }
  *major = run_at (v);
  if (major->len == 0 || !g_ascii_isdigit (v[0]) || v[major->len] != '.')
    return FALSE;
  *minor = run_at (v + major->len + 1);
  return minor->len > 0 && g_ascii_isdigit (minor->p[0]);
}

/* S as a number, FALSE when it does not fit 64 bits. */
static gboolean
to_u64 (Span s, guint64 *out)
{
  g_autofree char *text = g_strndup (s.p, s.len);
  return g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT64, out, NULL);
}

gboolean
ab_version_gap (const char *older, const char *newer, guint64 *out_majors,
                guint64 *out_minors)
{
  *out_majors = *out_minors = 0;
  Span ma, mi, na, ni;
  guint64 maj_o, min_o, maj_n, min_n;
  if (older == NULL || newer == NULL
      || ab_version_is_semver (older) != ab_version_is_semver (newer)
      || !major_minor (older, &ma, &mi) || !major_minor (newer, &na, &ni)
      || !to_u64 (ma, &maj_o) || !to_u64 (mi, &min_o) || !to_u64 (na, &maj_n)
      || !to_u64 (ni, &min_n) || maj_n < maj_o)
    return FALSE;
  *out_majors = maj_n - maj_o;
  *out_minors = maj_n == maj_o && min_n > min_o ? min_n - min_o : 0;
  return TRUE;
}

/* ---- pins (abdeploy(8), PINS) ---- */

/* The end of V's leading run of dot-separated numbers ("1.4" of "1.4rc1"):
 * V itself when it does not start with a digit. */
static const char *
numeric_head_end (const char *v)
{
  const char *p = v;
  while (g_ascii_isdigit (*p))
    {
      while (g_ascii_isdigit (*p))
        p++;
      if (p[0] != '.' || !g_ascii_isdigit (p[1]))
        break;
      p++;
    }
  return p;
}

gboolean
ab_version_is_prerelease (const char *v)
{
  SemVer sv;
  if (v == NULL)
    return FALSE;
  if (parse_semver (v, &sv))
    return sv.pre.len > 0;
  const char *end = numeric_head_end (v);
  return end != v && (*end == '-' || *end == '~' || g_ascii_isalpha (*end));
}

gboolean
ab_version_pin_is_exact (const char *pin)
{
  return ab_version_is_semver (pin);
}

gboolean
ab_version_follows_pin (const char *v, const char *pin)
{
  if (v == NULL || pin == NULL)
    return FALSE;
  if (strcmp (v, pin) == 0)
    return TRUE;
  gsize n = strlen (pin);
  if (ab_version_pin_is_exact (pin) || strncmp (v, pin, n) != 0 || v[n] != '.')
    return FALSE;
  return !ab_version_is_prerelease (v) || ab_version_is_prerelease (pin);
}
