// Package datamodel is the XenAPI data model in Go: the generated records, typed
// refs, enums, class/field registry and error constructors (*.gen.go, made by
// cmd/xapigen from schema/), and the hand-written generic runtime they share:
// the Writer interface the wire encoders implement, the Object interface every
// record implements, value codecs, refs and the Error type.
package datamodel
