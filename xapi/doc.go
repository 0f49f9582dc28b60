// Package xapi is the XenAPI server: it dispatches decoded calls (from package
// rpc) to the generated method table, validates sessions, enforces RBAC, decodes
// parameters into typed values, runs implicit messages generically over the
// replicated store and explicit messages through the per-class interfaces of
// messages.gen.go, and bootstraps the objects of a host on first start.
package xapi
