/* Authorization of every method call (abdeploy-dbus(5), AUTHORIZATION).
 *
 * The caller's uid comes from the bus (GetConnectionUnixUser). Root is
 * authorized for everything, as polkit itself decides for uid 0; everybody
 * else is checked with polkit's CheckAuthorization, called over the bus
 * (org.freedesktop.PolicyKit1), with the caller's bus name as subject.
 * Fail closed: when polkit cannot be asked, or does not answer yes, the
 * call gets org.abdeploy1.Error.NotAuthorized and nothing is done. */
#include "config.h"
#include "daemon.h"

/* polkit's CheckAuthorization flag: the caller may be asked (an agent). */
#define POLKIT_ALLOW_USER_INTERACTION 1u
/* How long polkit may take without interaction (an agent: the caller's own
 * timeout applies). */
#define POLKIT_TIMEOUT_MS (25 * 1000)

typedef struct
{
  Daemon *d;
  GDBusMethodInvocation *inv;
  const char *action;
  DaemonHandler handler;
  guint32 uid;
} AuthCall;

static void
auth_call_done (AuthCall *a, gboolean authorized, const char *why)
{
  Daemon *d = a->d;
  if (authorized)
    a->handler (d, a->inv, g_dbus_method_invocation_get_parameters (a->inv));
  else
    g_dbus_method_invocation_return_dbus_error (
        a->inv, DAEMON_ERROR_NOT_AUTHORIZED,
        why ? why : "Not authorized");
  g_free (a);
  daemon_busy_end (d);
}

static void
on_polkit_reply (GObject *source, GAsyncResult *res, gpointer data)
{
  AuthCall *a = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), res, &error);
  gboolean authorized = FALSE, challenge = FALSE;
  if (reply != NULL)
    g_variant_get (reply, "((bb@a{ss}))", &authorized, &challenge, NULL);
  g_autofree char *why = NULL;
  if (reply == NULL)
    why = g_strdup_printf ("Not authorized: polkit could not be asked whether uid %u may %s (%s); "
                           "refused. Start polkitd, or call as root", a->uid, a->action,
                           error->message);
  else if (!authorized)
    why = g_strdup_printf ("Not authorized: polkit refuses %s to uid %u%s", a->action, a->uid,
                           challenge ? " without authentication (call with interactive "
                                       "authorization allowed, with a polkit agent running)" : "");
  auth_call_done (a, authorized, why);
}

static void
ask_polkit (AuthCall *a)
{
  GDBusMessage *msg = g_dbus_method_invocation_get_message (a->inv);
  gboolean interactive = (g_dbus_message_get_flags (msg)
                          & G_DBUS_MESSAGE_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION) != 0;
  g_auto(GVariantBuilder) subject = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (&subject, "{sv}", "name",
                         g_variant_new_string (g_dbus_method_invocation_get_sender (a->inv)));
  GVariant *params = g_variant_new ("((sa{sv})sa{ss}us)", "system-bus-name", &subject, a->action,
                                    NULL, interactive ? POLKIT_ALLOW_USER_INTERACTION : 0u, "");
  g_dbus_connection_call (a->d->bus, "org.freedesktop.PolicyKit1",
                          "/org/freedesktop/PolicyKit1/Authority",
                          "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization", params,
                          G_VARIANT_TYPE ("((bba{ss}))"), G_DBUS_CALL_FLAGS_NONE,
                          interactive ? G_MAXINT : POLKIT_TIMEOUT_MS, NULL, on_polkit_reply, a);
}

static void
on_uid_reply (GObject *source, GAsyncResult *res, gpointer data)
{
  AuthCall *a = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), res, &error);
  if (reply == NULL)
    {
      g_autofree char *why = g_strdup_printf ("Not authorized: the bus did not tell the caller's "
                                              "uid (%s)", error->message);
      auth_call_done (a, FALSE, why);
      return;
    }
  g_variant_get (reply, "(u)", &a->uid);
  if (a->uid == 0)
    auth_call_done (a, TRUE, NULL);
  else
    ask_polkit (a);
}

void
daemon_authorize (Daemon *d, GDBusMethodInvocation *inv, const char *action,
                  DaemonHandler handler)
{
  AuthCall *a = g_new0 (AuthCall, 1);
  a->d = d;
  a->inv = inv; /* the call's reference: passed on to the handler, or used by the refusal */
  a->action = action;
  a->handler = handler;
  d->busy++;
  g_dbus_connection_call (d->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "GetConnectionUnixUser",
                          g_variant_new ("(s)", g_dbus_method_invocation_get_sender (inv)),
                          G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_uid_reply,
                          a);
}
