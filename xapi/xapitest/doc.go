// Package xapitest starts a complete single-host XenAPI server in process (an
// in-memory one-node store, the API server and an HTTP test server) for tests.
package xapitest
