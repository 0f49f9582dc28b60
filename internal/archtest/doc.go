// Package archtest checks the dependency rules of docs/ARCHITECTURE.md.
package archtest
