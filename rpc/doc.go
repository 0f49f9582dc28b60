// Package rpc is the XenAPI wire layer: an HTTP handler that decodes XML-RPC
// and JSON-RPC (1.0 and 2.0) calls, hands them to a Dispatcher, and streams the
// reply back in exactly the byte format xapi produces, so that XenCenter, Xen
// Orchestra's xen-api client, XenAPI.py and the PowerShell SDK work unchanged.
//
// # Routing
//
// The protocol is chosen from the request path only, never from Content-Type:
// a POST whose path starts with /jsonrpc is JSON-RPC (xapi matches handlers by
// longest prefix), every other POST path (/, /RPC2, /xmlrpc, /json, ...) is
// XML-RPC. OPTIONS on any path is answered as a CORS pre-flight. Every other
// method goes to Options.Other; when that is nil, xapi's answers for a path
// with no handler: 404 for GET, 403 for PUT and CONNECT, 501 otherwise.
//
// # Responses
//
// XML-RPC replies are the compact {Status, Value} / {Status, ErrorDescription}
// struct, with no whitespace between tags (Xen Orchestra's parser is
// whitespace-sensitive); Response.Raw sends the bare value instead
// (system.listMethods). JSON-RPC 1.0 replies carry "error":null on success,
// 2.0 replies carry no error key on success and {"code":1,"message":CODE,
// "data":[...]} on failure. The id is echoed with its type preserved.
//
// Value encodings follow xapi: int64 is an untyped XML <value>123</value>,
// int32 is <i4>, floats are <double>%.16g</double>, dates are the compact
// yyyymmddTHH:MM:SSZ form in UTC, void is the empty string.
//
// Deliberate choices where xapi's behaviour is unusable or unspecified:
//   - Non-finite floats are written as NaN, Infinity and -Infinity: inside
//     <double> in XML, and as the JSON strings "NaN", "Infinity", "-Infinity"
//     in JSON (xapi prints bare NaN/Infinity tokens, which is invalid JSON and
//     rejected by JSON.parse). These spellings are accepted by Python's
//     float(), JavaScript's Number() and .NET's double.Parse.
//   - JSON floats always carry a fraction or exponent (1.0, not 1), like
//     Yojson, so that clients can tell them from ints.
//   - In XML strings, CR is written as &#13; (besides escaping <, >, & and ")
//     because conforming XML parsers would otherwise turn it into LF. Control
//     characters other than TAB, LF and CR, and U+FFFE/U+FFFF, are dropped;
//     invalid UTF-8 is replaced by U+FFFD in both protocols.
//
// # Errors and limits
//
// A request that cannot be decoded (XML syntax error, JSON without id, bad
// jsonrpc version, v1 without a params array, batch arrays, ...) is answered
// with HTTP 500, a short HTML body and Connection: close, like xapi. A body
// larger than Options.MaxBody (default 300 KiB, xapi's RPC limit) is answered
// with HTTP 413 and Connection: close without being read further. An
// HTTP/1.x request body without Content-Length (chunked) is refused like
// xapi's read_body does: HTTP 500 ("We require a content-length: HTTP
// header") and Connection: close. A parameter string that is not valid UTF-8
// (in JSON, or from an XML <base64>) is answered, without dispatching, with
// the API error INVALID_VALUE ["Invalid UTF-8 string in parameter", s] as
// xapi checks before dispatch (invalid UTF-8 in XML text is a syntax error).
// A panic inside Dispatch is recovered and answered as the API error
// INTERNAL_ERROR [message]; a panic inside Response.Value is answered the
// same way if nothing has been sent yet, otherwise the connection is aborted.
//
// # Streaming
//
// Encoders append to a pooled 64 KiB buffer that is flushed to the
// http.ResponseWriter whenever it fills. A response that fits in the buffer
// is sent with Content-Length; a larger one is streamed with chunked transfer
// encoding (or, for HTTP/1.0 clients, delimited by closing the connection).
// The whole reply is never materialised in memory.
//
// Connections are persistent by default (HTTP/1.1); HTTP/1.0 requests and
// requests with Connection: close close the connection after the reply. Like
// xapi, replies say which with a Connection: keep-alive or close header.
// Dispatch receives the request's context, so a long-polling call such as
// event.from is cancelled when its client disconnects.
package rpc
