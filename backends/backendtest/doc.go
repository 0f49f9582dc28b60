// Package backendtest is the conformance suite every backends.Backend
// implementation must pass. An implementation's test calls
//
//	backendtest.Run(t, func(t *testing.T) backends.Backend { return newMyBackend(t) })
//
// The suite checks the lifecycle transitions, the power-state rules of
// backends.AllowedOps (every illegal operation fails with a
// *backends.BadPowerStateError carrying the right expected and actual
// states and changes nothing), not-found errors, memory exhaustion, events
// for every transition, metrics samples, guest agent data, cancellation and
// concurrent use. Checks for optional behaviour are skipped when the
// backend's HostInfo.Features says it is absent. A backend that implements
// Hanger also gets mid-operation cancellation checks.
package backendtest
