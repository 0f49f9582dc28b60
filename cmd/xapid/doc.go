// Command xapid is the xapi-go daemon: one XenAPI host.
//
//	xapid [serve] --data-dir DIR --listen ADDR:PORT [--tls-listen ADDR:PORT]
//	      [--root-password PW] [--raft-addr ADDR:PORT] [--log-level LEVEL]
//	xapid version
//	xapid schema-fields
//	xapid help
//
// Without a subcommand (or when the first argument is a flag) xapid serves.
// See `xapid serve -h` for every flag.
package main
