/* Writing channel manifests (abdeploy-manifest(5)). Only the publisher
 * writes manifests; devices only parse them (ab-manifest.h). */
#pragma once

#include "ab-manifest.h"

/* M as the text of a manifest file: pretty-printed JSON, members in the
 * order of abdeploy-manifest(5), ending in a newline. Invariant: the text
 * parses (ab_manifest_parse()) to a manifest equal to M when M is valid.
 * Never fails; the caller frees the result. */
char *ab_manifest_serialize (const AbManifest *m);
