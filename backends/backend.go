package backends

import (
	"context"
	"time"
)

// Backend drives one host's hypervisor. Implementations are safe for
// concurrent use. Every method takes the caller's context first; operations
// that can take time (the lifecycle calls) return an error matching
// ErrCancelled when ctx is done before they commit, and then leave the domain
// in the state it had before the call.
//
// Operations on a domain that does not exist return an error matching
// ErrNotFound. Operations that are not legal in the domain's current power
// state return a *BadPowerStateError.
type Backend interface {
	// Host describes the host: CPUs, memory and what the backend supports.
	Host(ctx context.Context) (HostInfo, error)

	// MemoryOverhead is the memory, in bytes, the hypervisor needs for a
	// domain built from spec on top of its guest memory. A Start needs
	// spec.MemoryDynamicMax + MemoryOverhead(spec) bytes of free host memory.
	MemoryOverhead(spec DomainSpec) int64

	// Start creates and boots the domain described by spec. spec.UUID may be
	// new (the domain becomes known to the backend) or name a Halted domain
	// (whose spec is replaced). With paused set, the domain is built but its
	// vCPUs do not run: it ends Paused instead of Running. Start returns the
	// new domain id.
	Start(ctx context.Context, spec DomainSpec, paused bool) (int, error)

	// Shutdown stops the domain. A clean shutdown asks the guest to power off
	// (legal only when Running) and waits for it; a hard shutdown destroys
	// the running domain, or discards a suspend image (legal when Running,
	// Paused or Suspended). The domain ends Halted.
	Shutdown(ctx context.Context, uuid string, clean bool) error

	// Reboot restarts the domain. A clean reboot asks the guest (Running
	// only); a hard reboot destroys and rebuilds it (Running or Paused). The
	// domain ends Running with a new domain id.
	Reboot(ctx context.Context, uuid string, clean bool) error

	// Suspend saves a Running domain's memory and destroys it; it ends
	// Suspended and releases its host memory.
	Suspend(ctx context.Context, uuid string) error

	// Resume rebuilds a Suspended domain from its image; it ends Running, or
	// Paused when paused is set, with a new domain id.
	Resume(ctx context.Context, uuid string, paused bool) error

	// Pause stops a Running domain's vCPUs; it ends Paused.
	Pause(ctx context.Context, uuid string) error

	// Unpause resumes a Paused domain's vCPUs; it ends Running.
	Unpause(ctx context.Context, uuid string) error

	// SetMemoryTarget sets the balloon target, in bytes, of an active
	// (Running or Paused) domain. The target must lie within
	// [spec.MemoryStaticMin, spec.MemoryStaticMax]; growing needs free host
	// memory.
	SetMemoryTarget(ctx context.Context, uuid string, target int64) error

	// SetVCPUs changes the number of online vCPUs of a Running domain, within
	// [1, spec.VCPUsMax].
	SetVCPUs(ctx context.Context, uuid string, n int) error

	// Destroy hard-stops the domain if it is active, discards any suspend
	// image and forgets the domain: afterwards State returns ErrNotFound.
	// It is legal in every power state.
	Destroy(ctx context.Context, uuid string) error

	// State reports one domain.
	State(ctx context.Context, uuid string) (DomainState, error)

	// List reports every domain the backend knows, ordered by UUID.
	List(ctx context.Context) ([]DomainState, error)

	// Sample takes one metrics sample of the host and of every active
	// domain. Counters are cumulative since the domain (or host) started, so
	// a 1 s sampler derives rates from consecutive samples.
	Sample(ctx context.Context) (Sample, error)

	// GuestData returns the guest agent's key/value tree for the domain:
	// xenstore-style paths relative to the domain's home
	// (/local/domain/<domid>), as the xe-guest-utilities agent writes them.
	// It is empty until the agent has published, and for domains that are
	// not active. See backends/guest for the layout and the parser.
	GuestData(ctx context.Context, uuid string) (map[string]string, error)

	// Watch subscribes to domain events. The channel is closed when ctx is
	// done or the backend is closed.
	Watch(ctx context.Context) <-chan Event

	// Close stops the backend's background work and closes every Watch
	// channel. Domains are not stopped. Calls after Close return ErrClosed.
	Close() error
}

// ConsoleReader is implemented by backends that can return a domain's
// recent console (serial) output.
type ConsoleReader interface {
	// Console returns the most recent console lines of the domain, oldest
	// first.
	Console(ctx context.Context, uuid string) ([]string, error)
}

// HostInfo describes a host as its backend sees it.
type HostInfo struct {
	// Hostname is the host's name.
	Hostname string
	// Hypervisor names the implementation ("sim", "kvm", "xen").
	Hypervisor string
	// Version is the hypervisor's version string.
	Version string
	// CPUs is the number of physical CPUs (threads).
	CPUs int
	// CPUModel, CPUVendor and CPUSpeedMHz describe the physical CPUs.
	CPUModel    string
	CPUVendor   string
	CPUSpeedMHz int
	// MemoryTotal is the host's physical memory in bytes.
	MemoryTotal int64
	// MemoryFree is the memory, in bytes, available for new domains
	// (including their overhead).
	MemoryFree int64
	// Capabilities lists the guest types the hypervisor can run, in xapi's
	// host.capabilities format (for example "hvm-3.0-x86_64").
	Capabilities []string
	// Features says which optional behaviour the backend supports.
	Features Features
}

// Features lists optional backend capabilities. The API layer uses it to
// trim allowed_operations; the conformance suite uses it to skip checks.
type Features struct {
	// Suspend: Suspend and Resume work.
	Suspend bool
	// LiveVCPUs: SetVCPUs works on a running domain.
	LiveVCPUs bool
	// LiveMemory: SetMemoryTarget works on an active domain.
	LiveMemory bool
	// GuestAgent: GuestData eventually reports an agent tree for a running
	// domain with an agent installed.
	GuestAgent bool
	// MemoryAccounting: Start fails with ErrNotEnoughMemory when the host
	// lacks free memory (rather than overcommitting).
	MemoryAccounting bool
}

// Supports reports whether op is usable given these features.
func (f Features) Supports(op Op) bool {
	switch op {
	case OpSuspend, OpResume:
		return f.Suspend
	case OpSetVCPUs:
		return f.LiveVCPUs
	case OpSetMemoryTarget:
		return f.LiveMemory
	default:
		return true
	}
}

// BootMode says how a domain boots.
type BootMode string

// Boot modes.
const (
	// BootBIOS boots an HVM guest with legacy firmware.
	BootBIOS BootMode = "bios"
	// BootUEFI boots an HVM guest with UEFI firmware.
	BootUEFI BootMode = "uefi"
	// BootDirect boots a kernel and initrd given in Boot (PV, PVH, or
	// direct kernel boot under KVM).
	BootDirect BootMode = "direct"
)

// Boot holds the boot parameters of a domain.
type Boot struct {
	// Mode selects the firmware or direct kernel boot.
	Mode BootMode
	// Order is the HVM boot device order, in xapi's HVM_boot_params
	// "order" format ("cd" = disk then CD-ROM, "n" = network).
	Order string
	// Kernel, Initrd and Cmdline are used with BootDirect.
	Kernel  string
	Initrd  string
	Cmdline string
}

// Disk is a virtual block device attached at boot.
type Disk struct {
	// Device is the guest device position ("0", "1", … or "xvda", "hda").
	Device string
	// Path is the host-side backing path (file, block device or URI).
	Path string
	// Size is the virtual size in bytes.
	Size int64
	// ReadOnly attaches the disk read-only.
	ReadOnly bool
	// CDROM marks the device as a CD-ROM drive.
	CDROM bool
}

// NIC is a virtual network interface attached at boot.
type NIC struct {
	// Device is the guest device index (VIF.device).
	Device int
	// MAC is the interface's MAC address, "aa:bb:cc:dd:ee:ff".
	MAC string
	// Bridge is the host bridge (or libvirt network) it plugs into.
	Bridge string
	// MTU is the interface MTU; 0 means the backend default.
	MTU int
}

// DomainSpec is everything a backend needs to build a domain. Memory sizes
// are in bytes and satisfy StaticMin ≤ DynamicMin ≤ DynamicMax ≤ StaticMax.
type DomainSpec struct {
	// UUID identifies the domain (the VM's uuid).
	UUID string
	// Name is the hypervisor-level name. It must be unique among the
	// backend's active and suspended domains; empty means the UUID.
	Name string
	// VCPUs is the number of vCPUs online at boot; VCPUsMax the most it can
	// be raised to live (0 means VCPUs).
	VCPUs    int
	VCPUsMax int
	// Memory bounds in bytes.
	MemoryStaticMin  int64
	MemoryDynamicMin int64
	MemoryDynamicMax int64
	MemoryStaticMax  int64
	// Boot holds the firmware or kernel boot parameters.
	Boot Boot
	// Platform holds xapi's VM.platform keys (acpi, apic, viridian,
	// device-model, nx, …) that the backend maps onto its configuration.
	Platform map[string]string
	// Other holds hints for the backend that have no typed field (for
	// example other_config:install-distro, used by the simulator to choose
	// the guest OS it pretends to run).
	Other map[string]string
	// Disks and NICs are attached at boot.
	Disks []Disk
	NICs  []NIC
}

// Validate checks the spec's internal consistency. Backends call it at the
// start of Start and wrap its error in ErrInvalid.
func (s DomainSpec) Validate() error {
	switch {
	case s.UUID == "":
		return invalidf("uuid is empty")
	case s.VCPUs < 1:
		return invalidf("vcpus %d < 1", s.VCPUs)
	case s.VCPUsMax != 0 && s.VCPUsMax < s.VCPUs:
		return invalidf("vcpus_max %d < vcpus %d", s.VCPUsMax, s.VCPUs)
	case s.MemoryStaticMin < 0,
		s.MemoryStaticMin > s.MemoryDynamicMin,
		s.MemoryDynamicMin > s.MemoryDynamicMax,
		s.MemoryDynamicMax > s.MemoryStaticMax:
		return invalidf("memory constraints violated: static_min %d, dynamic_min %d, dynamic_max %d, static_max %d",
			s.MemoryStaticMin, s.MemoryDynamicMin, s.MemoryDynamicMax, s.MemoryStaticMax)
	case s.MemoryDynamicMax <= 0:
		return invalidf("memory dynamic_max %d <= 0", s.MemoryDynamicMax)
	}
	seen := map[int]bool{}
	for _, n := range s.NICs {
		if seen[n.Device] {
			return invalidf("duplicate nic device %d", n.Device)
		}
		seen[n.Device] = true
	}
	disks := map[string]bool{}
	for _, d := range s.Disks {
		if disks[d.Device] {
			return invalidf("duplicate disk device %q", d.Device)
		}
		disks[d.Device] = true
	}
	return nil
}

// MaxVCPUs is VCPUsMax, or VCPUs when VCPUsMax is unset.
func (s DomainSpec) MaxVCPUs() int {
	if s.VCPUsMax == 0 {
		return s.VCPUs
	}
	return s.VCPUsMax
}

// DomainName is Name, or UUID when Name is empty.
func (s DomainSpec) DomainName() string {
	if s.Name == "" {
		return s.UUID
	}
	return s.Name
}

// Clone returns a deep copy of the spec.
func (s DomainSpec) Clone() DomainSpec {
	c := s
	c.Platform = cloneMap(s.Platform)
	c.Other = cloneMap(s.Other)
	c.Disks = append([]Disk(nil), s.Disks...)
	c.NICs = append([]NIC(nil), s.NICs...)
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// DomainState is a snapshot of one domain.
type DomainState struct {
	UUID string
	Name string
	// PowerState is the domain's power state.
	PowerState PowerState
	// DomID is the hypervisor's domain id; -1 unless Running or Paused.
	DomID int
	// StartTime is when the current domain was built (zero when inactive).
	StartTime time.Time
	// VCPUs is the number of online vCPUs (0 when inactive).
	VCPUs int
	// MemoryActual is the memory, in bytes, the guest currently has (0 when
	// inactive); MemoryTarget is its balloon target.
	MemoryActual int64
	MemoryTarget int64
}

// Active reports whether the domain exists in the hypervisor.
func (d DomainState) Active() bool { return d.PowerState.Active() }

// Sample is one metrics sample of a host and its active domains.
type Sample struct {
	Time    time.Time
	Host    HostSample
	Domains []DomainSample
}

// HostSample holds host-wide metrics.
type HostSample struct {
	// PCPUSeconds is, per physical CPU, the cumulative busy time in seconds.
	PCPUSeconds []float64
	// MemoryTotal and MemoryFree are in bytes.
	MemoryTotal int64
	MemoryFree  int64
}

// DomainSample holds one active domain's metrics. Counters are cumulative
// since the domain was built.
type DomainSample struct {
	UUID  string
	DomID int
	// VCPUSeconds is, per online vCPU, the cumulative run time in seconds.
	VCPUSeconds []float64
	// MemoryActual is the guest's current memory in bytes.
	MemoryActual int64
	// MemoryTarget is the balloon target in bytes.
	MemoryTarget int64
	// MemoryInternalFree is the free memory the guest reports, in bytes, or
	// -1 when it reports nothing.
	MemoryInternalFree int64
	// VIFs and VBDs hold per-device I/O counters.
	VIFs []VIFSample
	VBDs []VBDSample
}

// VIFSample holds one virtual NIC's cumulative counters.
type VIFSample struct {
	Device    int
	RxBytes   uint64
	TxBytes   uint64
	RxPackets uint64
	TxPackets uint64
}

// VBDSample holds one virtual disk's cumulative counters.
type VBDSample struct {
	Device     string
	ReadBytes  uint64
	WriteBytes uint64
	ReadOps    uint64
	WriteOps   uint64
}
