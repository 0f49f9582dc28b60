// Package sim is a deterministic simulated hypervisor implementing
// backends.Backend for one host. It is the default backend and the one the
// API layer's tests run against.
//
// The simulator models a host with finite memory and CPUs, domains with the
// four XenAPI power states and the legal transitions between them, domain ids
// increasing from 1, memory accounting (an active domain consumes its balloon
// target, initially its dynamic max, plus a per-domain overhead; a start that
// does not fit fails with *backends.NotEnoughMemoryError), a guest agent that
// publishes an xe-guest-utilities tree a configurable delay after a domain
// is built, console lines, and metrics counters that move plausibly.
//
// Given the same Config (Seed and Now included) and the same sequence of
// calls, the simulator produces the same domids, trees and samples.
//
// # Fault knobs
//
// FailNext makes the next operation of a kind fail with a given error;
// HangNext makes it block until its context is done; Crash, GuestShutdown
// and GuestReboot act as the guest or hypervisor would on their own;
// SetGuestData replaces a domain's agent tree; SetLatency changes an
// operation's latency at run time.
//
// # Guest hints
//
// The simulated guest OS is chosen from spec.Other["install-distro"] (the
// xapi template key: "debian…", "ubuntu…", "rhel…", "sles…", "windows…")
// or spec.Platform["viridian"] = "true" (Windows). spec.Other["sim-agent"] =
// "none" starts a guest without an agent (no tree, PV drivers absent).
package sim
