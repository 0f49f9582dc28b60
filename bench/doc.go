// Package bench holds the end-to-end benchmarks of the API server (make bench):
// get_all_records over 10,000 VMs on XML-RPC and JSON-RPC, concurrent getters
// over keep-alive connections, replicated setter latency with fsync, and the
// memory held per VM.
package bench
