package xapi

import "slices"

// DeclaredErrors returns the errors the method table declares for the
// message name ("VM.start"), or nil for an unknown message.
func DeclaredErrors(name string) []string {
	for _, m := range methodTable() {
		if m.Name == name {
			return slices.Clone(m.Errors)
		}
	}
	return nil
}
