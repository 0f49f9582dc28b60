package backends

import (
	"fmt"
	"strings"
)

// PowerState is a domain's power state, with XenAPI's names.
type PowerState int

// Power states. The zero value is Halted.
const (
	Halted PowerState = iota
	Paused
	Running
	Suspended
)

// PowerStates lists every power state.
var PowerStates = []PowerState{Halted, Paused, Running, Suspended}

// String returns the XenAPI enum name ("Halted", "Running", …).
func (p PowerState) String() string {
	switch p {
	case Halted:
		return "Halted"
	case Paused:
		return "Paused"
	case Running:
		return "Running"
	case Suspended:
		return "Suspended"
	default:
		return fmt.Sprintf("PowerState(%d)", int(p))
	}
}

// Lower returns the lower-case name used in VM_BAD_POWER_STATE parameters.
func (p PowerState) Lower() string { return strings.ToLower(p.String()) }

// Active reports whether a domain in this state exists in the hypervisor
// (has a domid and consumes host memory).
func (p PowerState) Active() bool { return p == Running || p == Paused }

// Op names a backend operation. The values are XenAPI's vm_operations names
// where one exists, so the API layer can use them directly.
type Op string

// Backend operations.
const (
	OpStart           Op = "start"
	OpCleanShutdown   Op = "clean_shutdown"
	OpHardShutdown    Op = "hard_shutdown"
	OpCleanReboot     Op = "clean_reboot"
	OpHardReboot      Op = "hard_reboot"
	OpSuspend         Op = "suspend"
	OpResume          Op = "resume"
	OpPause           Op = "pause"
	OpUnpause         Op = "unpause"
	OpSetMemoryTarget Op = "set_memory_dynamic_range"
	OpSetVCPUs        Op = "set_VCPUs_number_live"
	// OpDestroy is the backend's Destroy (hard stop and forget). It is
	// not xapi's VM.destroy, which deletes a halted VM's record.
	OpDestroy Op = "destroy"
)

// Ops lists every operation, in a fixed order.
var Ops = []Op{
	OpStart, OpCleanShutdown, OpHardShutdown, OpCleanReboot, OpHardReboot,
	OpSuspend, OpResume, OpPause, OpUnpause, OpSetMemoryTarget, OpSetVCPUs,
	OpDestroy,
}

// requiredStates is the legality table. It follows xapi's VM lifecycle
// (ocaml/xapi/xapi_vm_lifecycle.ml) for the operations xapi has.
var requiredStates = map[Op][]PowerState{
	OpStart:           {Halted},
	OpCleanShutdown:   {Running},
	OpHardShutdown:    {Paused, Running, Suspended},
	OpCleanReboot:     {Running},
	OpHardReboot:      {Paused, Running},
	OpSuspend:         {Running},
	OpResume:          {Suspended},
	OpPause:           {Running},
	OpUnpause:         {Paused},
	OpSetMemoryTarget: {Paused, Running},
	OpSetVCPUs:        {Running},
	OpDestroy:         {Halted, Paused, Running, Suspended},
}

// RequiredStates returns the power states in which op is legal, in the
// order Halted, Paused, Running, Suspended. It returns nil for an unknown op.
func RequiredStates(op Op) []PowerState {
	return append([]PowerState(nil), requiredStates[op]...)
}

// OpAllowed reports whether op is legal in power state s.
func OpAllowed(op Op, s PowerState) bool {
	for _, r := range requiredStates[op] {
		if r == s {
			return true
		}
	}
	return false
}

// AllowedOps returns the operations legal in power state s, in Ops order.
func AllowedOps(s PowerState) []Op {
	var ops []Op
	for _, op := range Ops {
		if OpAllowed(op, s) {
			ops = append(ops, op)
		}
	}
	return ops
}

// CheckPowerState returns nil if op is legal in state actual, and otherwise a
// *BadPowerStateError for the domain uuid.
func CheckPowerState(uuid string, op Op, actual PowerState) error {
	if OpAllowed(op, actual) {
		return nil
	}
	return &BadPowerStateError{UUID: uuid, Op: op, Expected: RequiredStates(op), Actual: actual}
}

// ShutdownOp returns OpCleanShutdown or OpHardShutdown.
func ShutdownOp(clean bool) Op {
	if clean {
		return OpCleanShutdown
	}
	return OpHardShutdown
}

// RebootOp returns OpCleanReboot or OpHardReboot.
func RebootOp(clean bool) Op {
	if clean {
		return OpCleanReboot
	}
	return OpHardReboot
}
