// Package backends defines the contract between the API layer and a
// hypervisor: the Backend interface and the small, self-contained types it
// speaks (domain specs, domain state, metrics samples, guest-agent trees,
// events and typed errors).
//
// The package deliberately knows nothing about the XenAPI data model. The API
// layer translates VM, VIF and VBD records into a DomainSpec and maps the
// errors defined here onto XenAPI errors (ErrBadPowerState becomes
// VM_BAD_POWER_STATE, ErrNotEnoughMemory becomes HOST_NOT_ENOUGH_FREE_MEMORY,
// and so on), much as xapi's xapi_xenops.ml sits between xapi and xenopsd.
//
// # Domains and power states
//
// A backend remembers every domain it has been asked to start until the
// domain is destroyed. A remembered domain is in one of four power states,
// named as in XenAPI: Halted, Paused, Running or Suspended. Only Paused and
// Running domains are "active": they have a domain id (domid) and consume host
// memory. A Suspended domain keeps its memory image outside the hypervisor;
// a Halted domain keeps only its last spec.
//
// Which operation is legal in which state is fixed by AllowedOps and
// RequiredStates; every backend must return a *BadPowerStateError (matching
// ErrBadPowerState) for any other combination. The conformance suite in
// backends/backendtest checks this, and the transitions themselves, for every
// implementation.
//
// # Events
//
// Watch returns a channel of Event values in commit order. Backends use a
// Broadcaster so that a slow subscriber never blocks the hypervisor: if a
// subscriber falls too far behind, its backlog is discarded and it receives
// one EventResync, after which it should re-read the state with List.
//
// # Implementations
//
// backends/sim is a deterministic simulated hypervisor used by default and in
// tests. KVM (through libvirt) and Xen (through libvirt's libxl driver plus
// xenstore) implementations live in sibling packages and must pass the same
// conformance suite.
package backends
