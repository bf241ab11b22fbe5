/* The daemon's conversions: engine errors to named D-Bus errors (one per
 * CLI exit code), JSON documents and progress to GVariants. */
#include "config.h"
#include "daemon.h"
#include "cli/ab-exitcode.h"

/* Indexed by the CLI's exit code (abdeploy(8), EXIT STATUS). */
static const char *const error_names[] = {
  [AB_EXIT_ERROR] = "org.abdeploy1.Error.Failed",
  [AB_EXIT_USAGE] = "org.abdeploy1.Error.Usage",
  [AB_EXIT_VERIFY] = "org.abdeploy1.Error.SignatureRefused",
  [AB_EXIT_LOCKED] = "org.abdeploy1.Error.Locked",
  [AB_EXIT_NOTHING_TO_DO] = "org.abdeploy1.Error.NothingToDo",
  [AB_EXIT_REFUSED] = "org.abdeploy1.Error.InvariantRefused",
};

const char *
daemon_error_name (int code)
{
  if (code <= 0 || code >= (int) G_N_ELEMENTS (error_names))
    return error_names[AB_EXIT_ERROR];
  return error_names[code];
}

void
daemon_return_gerror (GDBusMethodInvocation *inv, const GError *error)
{
  g_dbus_method_invocation_return_dbus_error (
      inv, daemon_error_name (ab_exit_code_for_error (error)), error->message);
}

static GVariant *node_to_variant (JsonNode *node);

static GVariant *
array_to_variant (JsonArray *a)
{
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("av"));
  for (guint i = 0; i < json_array_get_length (a); i++)
    {
      GVariant *v = node_to_variant (json_array_get_element (a, i));
      if (v != NULL)
        g_variant_builder_add (&b, "v", v);
    }
  return g_variant_builder_end (&b);
}

static GVariant *
value_to_variant (JsonNode *node)
{
  switch (json_node_get_value_type (node) == G_TYPE_STRING ? 's'
          : json_node_get_value_type (node) == G_TYPE_BOOLEAN ? 'b'
          : json_node_get_value_type (node) == G_TYPE_DOUBLE ? 'd' : 'x')
    {
    case 's': return g_variant_new_string (json_node_get_string (node));
    case 'b': return g_variant_new_boolean (json_node_get_boolean (node));
    case 'd': return g_variant_new_double (json_node_get_double (node));
    default: return g_variant_new_int64 (json_node_get_int (node));
    }
}

/* NULL for a JSON null: D-Bus has no null; the member is left out. */
static GVariant *
node_to_variant (JsonNode *node)
{
  switch (json_node_get_node_type (node))
    {
    case JSON_NODE_OBJECT: return daemon_json_to_vardict (json_node_get_object (node));
    case JSON_NODE_ARRAY: return array_to_variant (json_node_get_array (node));
    case JSON_NODE_VALUE: return value_to_variant (node);
    case JSON_NODE_NULL:
    default: return NULL;
    }
}

GVariant *
daemon_json_to_vardict (JsonObject *o)
{
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a{sv}"));
  JsonObjectIter it;
  const char *name;
  JsonNode *member;
  json_object_iter_init (&it, o);
  while (json_object_iter_next (&it, &name, &member))
    {
      GVariant *v = node_to_variant (member);
      if (v != NULL)
        g_variant_builder_add (&b, "{sv}", name, v);
    }
  return g_variant_builder_end (&b);
}

GVariant *
daemon_progress_to_variant (const DaemonProgress *p)
{
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a{sv}"));
  if (p->phase == NULL)
    return g_variant_builder_end (&b);
  g_variant_builder_add (&b, "{sv}", "phase", g_variant_new_string (p->phase));
  g_variant_builder_add (&b, "{sv}", "done", g_variant_new_uint64 (p->done));
  const char *unit = ab_progress_unit_name (p->unit);
  if (unit != NULL)
    g_variant_builder_add (&b, "{sv}", "unit", g_variant_new_string (unit));
  if (p->total >= 0)
    {
      g_variant_builder_add (&b, "{sv}", "total", g_variant_new_int64 (p->total));
      double pct = p->total > 0 ? 100.0 * (double) p->done / (double) p->total : 100.0;
      g_variant_builder_add (&b, "{sv}", "percent", g_variant_new_double (MIN (pct, 100.0)));
    }
  return g_variant_builder_end (&b);
}
