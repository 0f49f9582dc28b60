// Package clientenv finds the real XenAPI clients the conformance tests run
// (Debian's XenAPI.py, npm's xen-api under tests/clients) and skips a test
// that lacks one, or fails it when XAPI_CLIENT_TESTS_REQUIRED is set (CI).
package clientenv
