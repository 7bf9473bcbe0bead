"""The built-in JSON-lines formats, as data: one definition per producer (grammar in ``jsonl.py``).

``formats/__init__.py`` registers each as a ``FormatEntry`` of the "json" family whose definition
is the JSON text of the mapping below. Their ``require`` keys are what tells them apart in
auto-detection (a Caddy line also has a "request", as nginx_json's may, but never a nginx time key).
"""

from __future__ import annotations

import json

Definition = dict[str, object]

# nginx ``log_format NAME escape=json '{"remote_addr":"$remote_addr", ...}'``: keys are nginx's
# variable names, as most setups (and nginx's docs) write them. ``escape=default`` lines (``\xHH``)
# are read as well. The request may be logged whole ($request), as $request_method + $request_uri,
# or as $uri + $args.
NGINX_JSON: Definition = {
    "ts": {
        "time_iso8601": "iso8601",
        "time_local": "clf",
        "msec": "epoch",
        "@timestamp": "auto",
        "time": "auto",
        "timestamp": "auto",
    },
    "client": ["remote_addr", "client"],
    "domain": ["host", "http_host", "server_name"],
    "request": "request",
    "method": "request_method",
    "uri": "request_uri",
    "path": "uri",
    "query": "args",
    "protocol": "server_protocol",
    "status": "status",
    "bytes": ["body_bytes_sent", "bytes_sent"],
    "referrer": "http_referer",
    "user_agent": "http_user_agent",
    "forwarded_for": "http_x_forwarded_for",
    "request_id": "request_id",
    "tls": "ssl_protocol",
    "upstream": "upstream_addr",
    # a peer and a request: an application's JSON log with a "request" key alone is not an access log
    "require": [["remote_addr", "client"], ["request", "request_uri", "uri"]],
    "escape": "default",
}

# Caddy v2's access log (``log`` directive, JSON encoder). ``remote_ip`` is the socket peer;
# ``client_ip`` is Caddy's own trusted_proxies resolution, which hostlogs does itself from the
# header (ingest.trusted_proxies). Headers are arrays (one element per header line): a header sent
# twice is joined with ", " as a proxy would. ``ts`` is epoch seconds unless time_format is set.
CADDY: Definition = {
    "ts": "ts",
    "client": "request.remote_ip",
    "domain": "request.host",
    "method": "request.method",
    "uri": "request.uri",
    "protocol": "request.proto",
    "status": "status",
    "bytes": "size",
    "referrer": "request.headers.Referer[0]",
    "user_agent": "request.headers.User-Agent[0]",
    "forwarded_for": "request.headers.X-Forwarded-For[*]",
    "tls": "request.tls.version",
    "require": ["request.remote_ip"],
    # the access logger only: Caddy's http.log.error lines carry the same request (a second row)
    "match": {"logger": "^http\\.log\\.access"},
}

# Traefik's access log with ``format: json``. RequestPath is the request URI (with its query);
# request headers appear as request_<Header> only when kept by ``fields.headers``. ClientAddr is the
# socket peer; Traefik overwrites ClientHost with the X-Forwarded-For header when there is one, so
# ClientHost is the chain (or the peer's host again): never the client.
TRAEFIK_JSON: Definition = {
    "ts": {"StartUTC": "iso8601", "StartLocal": "iso8601", "time": "iso8601"},
    "client": "ClientAddr",
    "domain": "RequestHost",
    "method": "RequestMethod",
    "uri": "RequestPath",
    "protocol": "RequestProtocol",
    "status": "DownstreamStatus",
    "bytes": "DownstreamContentSize",
    "referrer": "request_Referer",
    "user_agent": "request_User-Agent",
    "forwarded_for": ["request_X-Forwarded-For", "ClientHost"],
    "tls": "TLSVersion",
    "upstream": "ServiceAddr",
    "require": ["ClientHost", "RequestMethod"],
}

# Envoy's JSON access log as Envoy Gateway writes it (":authority", "user-agent"...) and Istio's
# JSON encoding (authority, user_agent, x_forwarded_for, request_id).
ENVOY_JSON: Definition = {
    "ts": "start_time",
    "time_format": "iso8601",
    "client": "downstream_remote_address",
    "domain": [":authority", "authority"],
    "method": "method",
    "uri": ["x-envoy-origin-path", "path"],
    "protocol": "protocol",
    "status": "response_code",
    "bytes": "bytes_sent",
    "referrer": ["referer", "referrer"],
    "user_agent": ["user-agent", "user_agent"],
    "forwarded_for": ["x-forwarded-for", "x_forwarded_for"],
    "request_id": ["x-request-id", "request_id"],
    "upstream": "upstream_host",
    "require": [["downstream_remote_address", ":authority"]],
}

# Cloudflare Logpush, http_requests dataset. EdgeStartTimestamp is RFC 3339 or unix seconds or
# nanoseconds per the job's timestamp_format ("auto" reads all three). ClientIP is the visitor as
# Cloudflare's edge saw it: the socket peer from hostlogs' point of view.
CLOUDFLARE: Definition = {
    "ts": "EdgeStartTimestamp",
    "client": "ClientIP",
    "domain": "ClientRequestHost",
    "method": "ClientRequestMethod",
    "uri": "ClientRequestURI",
    "protocol": "ClientRequestProtocol",
    "status": "EdgeResponseStatus",
    "bytes": "EdgeResponseBytes",
    "referrer": "ClientRequestReferer",
    "user_agent": "ClientRequestUserAgent",
    "request_id": "RayID",
    "tls": "ClientSSLProtocol",
    "edge_location": "EdgeColoCode",
    "require": ["ClientIP", ["ClientRequestHost", "EdgeStartTimestamp"]],
}

# name -> (definition as JSON text, detection priority, description). The priorities only break
# ties (below a user format's); the required keys keep the formats apart.
DEFINITIONS: dict[str, tuple[str, int, str]] = {
    "nginx_json": (json.dumps(NGINX_JSON), 31, "nginx log_format escape=json (or default) keyed by variable"),
    "caddy": (json.dumps(CADDY), 32, "Caddy v2 JSON access log"),
    "traefik_json": (json.dumps(TRAEFIK_JSON), 33, "Traefik JSON access log"),
    "envoy_json": (json.dumps(ENVOY_JSON), 34, "Envoy / Envoy Gateway / Istio JSON access log"),
    "cloudflare": (json.dumps(CLOUDFLARE), 35, "Cloudflare Logpush http_requests"),
}
