// Package outbound owns Berth's triggers, the webhooks it sends when an image
// version is pushed (SPEC §8): the URL rules checked when a trigger is saved
// (ValidateURL), the tag filters (Filter, CompileFilter), the JSON payload
// (NewPayload), its signature (Sign, header X-Berth-Signature), and an
// SSRF-safe client that sends one delivery (Deliverer).
//
// A delivery is refused, before any connection, when the URL breaks a save-time
// rule or the host resolves to a loopback, private, link-local, shared (CGNAT),
// multicast, unspecified or reserved address, in IPv4, IPv6 or IPv4-mapped
// IPv6 form, unless the operator allowed that address with
// --trigger-allow-cidr (Deliverer.AllowCIDRs). The host is resolved once and
// the vetted address is dialled directly, so DNS cannot rebind between the
// check and the connection; the Host header and TLS server name stay those of
// the URL. Redirects are never followed.
//
// Retries, backoff and the access records (history) belong to the worker that
// calls Deliver; Result.Refused tells it when retrying is pointless.
package outbound
