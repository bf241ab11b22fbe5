/* The protocol between devices and the publisher's server (issue 17;
 * abdeploy-manifest(5), PROTOCOL).
 *
 * Invariant: every HTTP request abdeploy makes carries the header
 * AB_PROTOCOL_HEADER: AB_PROTOCOL (libcurl's and libostree's), and a
 * manifest whose top-level "protocol" is above AB_PROTOCOL is refused
 * before anything of it is used. New optional members need no new
 * protocol; a change an older device must not ignore bumps it. */
#pragma once

#define AB_PROTOCOL 1
#define AB_PROTOCOL_HEADER "X-Abdeploy-Protocol"
/* "X-Abdeploy-Protocol: 1", the header line libcurl sends. */
#define AB_PROTOCOL_HEADER_LINE AB_PROTOCOL_HEADER ": 1"
