package xapi

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
)

// Version facts reported in host.software_version. platform_version must stay
// at or above 2.9.50 (XenCenter refuses older coordinators).
const (
	productBrand       = "xapi-go"
	productVersion     = "8.4.0"
	productVersionText = "8.4"
	platformName       = "XCP"
	platformVersion    = "3.4.0"
	buildNumber        = "release/xapi-go/master/1"
	xapiVersion        = "26.17"
	xapiBuild          = "26.17.0"
	xenVersion         = "4.17.0"
	buildDate          = "2025-01-01"
)

const (
	kib = int64(1024)
	mib = 1024 * kib
	gib = 1024 * mib
)

// hostObjects holds the refs of the objects of a fresh one-host pool, all
// drawn before any record is built so that every record can name the others.
type hostObjects struct {
	host, pool, hostMetrics               string
	dom0, dom0Metrics                     string
	consoles                              []string
	hostCPUs                              []string
	mgmtNet, internalNet, pif, pifMetrics string
	localSR, localPBD, dvdSR, dvdPBD      string
	smExt, smUdev, smISO                  string
	templates, templateMetrics            []string
	hostUUID, poolUUID                    string
	now, bootTime                         time.Time
	machine                               machineInfo
	hostname, address                     string
	dom0MemTarget, dom0MemStaticMin       int64
}

// buildHostObjects adds the objects of a fresh one-host pool to b: the pool,
// this host with its metrics and CPUs, the control domain, default templates,
// the management and internal networks with the management PIF, local
// storage (an ext SR and a DVD-drive SR with their PBDs and SM drivers) and
// the roles.
func (s *Server) buildHostObjects(b *batchBuilder) {
	h := &hostObjects{
		host: datamodel.NewRef(), pool: datamodel.NewRef(), hostMetrics: datamodel.NewRef(),
		dom0: datamodel.NewRef(), dom0Metrics: datamodel.NewRef(),
		consoles: []string{datamodel.NewRef(), datamodel.NewRef()},
		mgmtNet:  datamodel.NewRef(), internalNet: datamodel.NewRef(),
		pif: datamodel.NewRef(), pifMetrics: datamodel.NewRef(),
		localSR: datamodel.NewRef(), localPBD: datamodel.NewRef(),
		dvdSR: datamodel.NewRef(), dvdPBD: datamodel.NewRef(),
		smExt: datamodel.NewRef(), smUdev: datamodel.NewRef(), smISO: datamodel.NewRef(),
		hostUUID: hostUUIDFor(s.store.NodeID()), poolUUID: datamodel.NewUUID(),
		now:      time.Now().UTC().Truncate(time.Second),
		machine:  readMachineInfo(),
		hostname: s.cfg.Hostname, address: s.cfg.Address,
	}
	if h.hostname == "" {
		h.hostname = "localhost"
	}
	h.bootTime = h.machine.bootTime
	if h.bootTime.IsZero() || h.bootTime.After(h.now) {
		h.bootTime = h.now
	}
	for range h.machine.cpus {
		h.hostCPUs = append(h.hostCPUs, datamodel.NewRef())
	}
	for range defaultTemplates {
		h.templates = append(h.templates, datamodel.NewRef())
		h.templateMetrics = append(h.templateMetrics, datamodel.NewRef())
	}
	h.dom0MemTarget = dom0Memory(h.machine.memTotal)
	h.dom0MemStaticMin = min(h.dom0MemTarget, gib)

	s.hostRef = datamodel.HostRef(h.host)
	s.poolRef = datamodel.PoolRef(h.pool)

	add := func(ref string, o datamodel.Object) { b.ops = append(b.ops, createOp(ref, o)) }
	add(h.pool, h.poolRecord())
	add(h.host, h.hostRecord())
	add(h.hostMetrics, h.hostMetricsRecord())
	for i, ref := range h.hostCPUs {
		add(ref, h.hostCPURecord(i))
	}
	add(h.dom0, h.dom0Record())
	add(h.dom0Metrics, h.dom0MetricsRecord())
	for i, ref := range h.consoles {
		add(ref, h.consoleRecord(i, ref))
	}
	for i := range defaultTemplates {
		add(h.templates[i], h.templateRecord(i))
		add(h.templateMetrics[i], h.templateMetricsRecord())
	}
	add(h.mgmtNet, h.managementNetworkRecord())
	add(h.internalNet, h.internalNetworkRecord())
	add(h.pif, h.pifRecord())
	add(h.pifMetrics, h.pifMetricsRecord())
	add(h.localSR, h.localSRRecord())
	add(h.localPBD, h.pbdRecord(h.localSR, map[string]string{"device": "/dev/sda3"}))
	add(h.dvdSR, h.dvdSRRecord())
	add(h.dvdPBD, h.pbdRecord(h.dvdSR, map[string]string{"location": "/dev/xapi/cd"}))
	add(h.smExt, smRecord("ext", "Local EXT3 VHD", "SR plugin representing disks as VHD files stored on a local EXT3 filesystem, created inside an LVM volume", smFeaturesFull))
	add(h.smUdev, smRecord("udev", "Local Media", "SR plugin which represents removable devices (CD drives, USB disks) as VDIs", smFeaturesUdev))
	add(h.smISO, smRecord("iso", "ISO", "Handles CD images stored as files in iso format", smFeaturesISO))
	s.addRoles(b)
}

// --- pool -------------------------------------------------------------------

// licenseRestrictions is the feature map of a free edition: "restrict_X" set
// to "true" disables X in clients.
func licenseRestrictions() map[string]string {
	m := map[string]string{"enable_xha": "true", "platform_filter": "false", "regular_nag_dialog": "false"}
	for _, f := range []string{
		"vswitch_controller", "lab", "stage", "storagelink", "storagelink_site_recovery",
		"hotfix_apply", "health_check", "vlan", "qos", "pool_attached_storage", "netapp",
		"equalogic", "pooling", "marathon", "email_alerting", "historical_performance",
		"rbac", "dmc", "checkpoint", "cpu_masking", "connection", "vmpr", "vmss", "gpu",
		"dr", "vif_locking", "storage_xen_motion", "vgpu", "integrated_gpu_passthrough",
		"vss", "guest_agent_auto_update", "pci_device_for_auto_update", "xen_motion",
		"guest_ip_setting", "ad", "nested_virt", "live_patching", "set_vcpus_number_live",
		"igmp_snooping", "rpu", "pool_size", "cbt", "usb_passthrough", "network_sriov",
		"corosync", "zstd_export", "pool_secret_rotation", "certificate_verification",
		"updates", "internal_repository_access", "batch_hotfix_apply", "vtpm",
	} {
		m["restrict_"+f] = "false"
	}
	// Features that depend on proprietary add-ons stay off.
	for _, f := range []string{
		"wlb", "web_selfservice", "web_selfservice_manager", "export_resource_data",
		"read_caching", "cifs", "xcm", "vm_memory_introspection", "management_on_vlan",
		"ws_proxy", "pvs_proxy",
	} {
		m["restrict_"+f] = "true"
	}
	m["restrict_intellicache"] = "false"
	return m
}

func (h *hostObjects) poolRecord() *datamodel.PoolRecord {
	p := datamodel.NewPoolRecord()
	p.UUID = h.poolUUID
	p.NameLabel = "" // a fresh xapi pool is unnamed
	p.Master = datamodel.HostRef(h.host)
	p.DefaultSR = datamodel.SRRef(h.localSR)
	p.SuspendImageSR = datamodel.SRRef(h.localSR)
	p.CrashDumpSR = datamodel.SRRef(h.localSR)
	p.OtherConfig = map[string]string{
		"memory-ratio-hvm": "0.25",
		"memory-ratio-pv":  "0.25",
	}
	p.Restrictions = licenseRestrictions()
	p.AllowedOperations = []datamodel.PoolAllowedOperations{
		datamodel.PoolAllowedOperationsHAEnable,
		datamodel.PoolAllowedOperationsClusterCreate,
		datamodel.PoolAllowedOperationsDesignateNewMaster,
		datamodel.PoolAllowedOperationsConfigureRepositories,
		datamodel.PoolAllowedOperationsSyncUpdates,
		datamodel.PoolAllowedOperationsGetUpdates,
		datamodel.PoolAllowedOperationsApplyUpdates,
		datamodel.PoolAllowedOperationsTLSVerificationEnable,
		datamodel.PoolAllowedOperationsCertRefresh,
		datamodel.PoolAllowedOperationsCopyPrimaryHostCerts,
	}
	p.CurrentOperations = map[string]datamodel.PoolAllowedOperations{}
	m := h.machine
	p.CPUInfo = map[string]string{
		"cpu_count":         strconv.Itoa(len(m.cpus)),
		"socket_count":      strconv.Itoa(m.sockets),
		"vendor":            m.cpus[0].vendor,
		"features_pv":       m.features,
		"features_hvm":      m.features,
		"features_pv_host":  m.features,
		"features_hvm_host": m.features,
	}
	p.UEFICertificates = ""
	p.CustomUEFICertificates = ""
	p.RepositoryProxyURL = ""
	p.TLSVerificationEnabled = false
	p.GuiConfig = map[string]string{}
	p.HealthCheckConfig = map[string]string{}
	p.GuestAgentConfig = map[string]string{}
	p.HAConfiguration = map[string]string{}
	return p
}

// --- host -------------------------------------------------------------------

func (h *hostObjects) iqn() string {
	return "iqn." + h.now.Format("2006-01") + ".org.xapi-go:" + h.hostUUID[:8]
}

func unixFloat(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) + "." }

func (h *hostObjects) hostRecord() *datamodel.HostRecord {
	m := h.machine
	r := datamodel.NewHostRecord()
	r.UUID = h.hostUUID
	r.NameLabel = h.hostname
	r.NameDescription = "Default install"
	r.Hostname = h.hostname
	r.Address = h.address
	r.MemoryOverhead = hostMemoryOverhead(m.memTotal)
	r.AllowedOperations = []datamodel.HostAllowedOperations{
		datamodel.HostAllowedOperationsProvision,
		datamodel.HostAllowedOperationsEvacuate,
		datamodel.HostAllowedOperationsShutdown,
		datamodel.HostAllowedOperationsReboot,
		datamodel.HostAllowedOperationsVMStart,
		datamodel.HostAllowedOperationsVMResume,
		datamodel.HostAllowedOperationsVMMigrate,
		datamodel.HostAllowedOperationsApplyUpdates,
	}
	r.CurrentOperations = map[string]datamodel.HostAllowedOperations{}
	r.APIVersionMajor = datamodel.APIVersionMajor
	r.APIVersionMinor = datamodel.APIVersionMinor
	r.APIVersionVendor = "XenSource"
	r.APIVersionVendorImplementation = map[string]string{}
	r.Enabled = true
	r.SoftwareVersion = map[string]string{
		"product_brand":              productBrand,
		"product_version":            productVersion,
		"product_version_text":       productVersionText,
		"product_version_text_short": productVersionText,
		"platform_name":              platformName,
		"platform_version":           platformVersion,
		"build_number":               buildNumber,
		"git_id":                     "0",
		"hostname":                   h.hostname,
		"date":                       buildDate,
		"is_preview_release":         "false",
		"xapi":                       xapiVersion,
		"xapi_build":                 xapiBuild,
		"xen":                        xenVersion,
		"linux":                      m.kernel,
		"network_backend":            "bridge",
		"db_schema":                  fmt.Sprintf("%d.%d", datamodel.SchemaVersionMajor, datamodel.SchemaVersionMinor),
		"dom0_os":                    m.osName,
	}
	r.OtherConfig = map[string]string{
		"agent_start_time": unixFloat(h.now),
		"boot_time":        unixFloat(h.bootTime),
		"iscsi_iqn":        h.iqn(),
		"multipathing":     "false",
		"multipathhandle":  "dmp",
	}
	r.Capabilities = []string{"xen-3.0-x86_64", "xen-3.0-x86_32p", "hvm-3.0-x86_32", "hvm-3.0-x86_32p", "hvm-3.0-x86_64"}
	r.CPUConfiguration = map[string]string{}
	r.SchedPolicy = "credit"
	r.SupportedBootloaders = []string{"pygrub", "eliloader"}
	r.ResidentVMs = []datamodel.VMRef{datamodel.VMRef(h.dom0)}
	r.Logging = map[string]string{}
	r.PIFs = []datamodel.PIFRef{datamodel.PIFRef(h.pif)}
	r.SuspendImageSR = datamodel.SRRef(h.localSR)
	r.CrashDumpSR = datamodel.SRRef(h.localSR)
	r.PBDs = []datamodel.PBDRef{datamodel.PBDRef(h.localPBD), datamodel.PBDRef(h.dvdPBD)}
	for _, c := range h.hostCPUs {
		r.HostCPUs = append(r.HostCPUs, datamodel.HostCPURef(c))
	}
	r.CPUInfo = map[string]string{
		"cpu_count":         strconv.Itoa(len(m.cpus)),
		"socket_count":      strconv.Itoa(m.sockets),
		"threads_per_core":  strconv.Itoa(m.threadsPerCore),
		"vendor":            m.cpus[0].vendor,
		"speed":             m.cpus[0].speedText(),
		"modelname":         m.cpus[0].modelname,
		"family":            strconv.FormatInt(m.cpus[0].family, 10),
		"model":             strconv.FormatInt(m.cpus[0].model, 10),
		"stepping":          m.cpus[0].stepping,
		"flags":             m.cpus[0].flags,
		"features":          m.features,
		"features_pv":       m.features,
		"features_hvm":      m.features,
		"features_pv_host":  m.features,
		"features_hvm_host": m.features,
	}
	r.Metrics = datamodel.HostMetricsRef(h.hostMetrics)
	r.LicenseParams = map[string]string{
		"sku_type":           "free",
		"sku_marketing_name": productBrand,
		"expiry":             "20380119T03:14:07Z",
		"grace":              "no",
		"version":            productVersion,
		"productcode":        "",
		"serialnumber":       "",
	}
	for k, v := range licenseRestrictions() {
		r.LicenseParams[k] = v
	}
	r.BootFreeMem = m.memFree
	r.HAStatefiles = []string{}
	r.HANetworkPeers = []string{}
	r.ExternalAuthType = ""
	r.ExternalAuthServiceName = ""
	r.ExternalAuthConfiguration = map[string]string{}
	r.Edition = "free"
	r.Editions = []string{"free"}
	r.LicenseServer = map[string]string{"address": "localhost", "port": "27000"}
	r.BiosStrings = m.bios
	r.PowerOnMode = ""
	r.PowerOnConfig = map[string]string{}
	r.LocalCacheSR = datamodel.SRRef(datamodel.NullRef) // IntelliCache is not enabled
	r.ChipsetInfo = map[string]string{"iommu": "false"}
	r.SSLLegacy = false
	r.GuestVCPUsParams = map[string]string{}
	r.Display = datamodel.HostDisplayEnabled
	r.VirtualHardwarePlatformVersions = []int64{0, 1, 2}
	r.ControlDomain = datamodel.VMRef(h.dom0)
	r.ISCSIIqn = h.iqn()
	r.Multipathing = false
	r.UEFICertificates = ""
	r.TLSVerificationEnabled = false
	r.LastSoftwareUpdate = datamodel.Epoch
	r.HttpsOnly = false
	r.LatestSyncedUpdatesApplied = datamodel.LatestSyncedUpdatesAppliedStateUnknown
	r.NUMAAffinityPolicy = datamodel.HostNUMAAffinityPolicyDefaultPolicy
	r.SSHEnabled = true
	return r
}

func (h *hostObjects) hostMetricsRecord() *datamodel.HostMetricsRecord {
	r := datamodel.NewHostMetricsRecord()
	r.UUID = datamodel.NewUUID()
	r.MemoryTotal = h.machine.memTotal
	// Xen's view: dom0's allocation is not free for guests.
	r.MemoryFree = max(h.machine.memTotal-h.dom0MemTarget-hostMemoryOverhead(h.machine.memTotal), 0)
	r.Live = true
	r.LastUpdated = h.now
	r.OtherConfig = map[string]string{}
	return r
}

func (h *hostObjects) hostCPURecord(i int) *datamodel.HostCPURecord {
	c := h.machine.cpus[i]
	r := datamodel.NewHostCPURecord()
	r.UUID = datamodel.NewUUID()
	r.Host = datamodel.HostRef(h.host)
	r.Number = int64(i)
	r.Vendor = c.vendor
	r.Speed = c.speed
	r.Modelname = c.modelname
	r.Family = c.family
	r.Model = c.model
	r.Stepping = c.stepping
	r.Flags = c.flags
	r.Features = h.machine.features
	r.Utilisation = 0
	r.OtherConfig = map[string]string{}
	return r
}

// --- control domain -----------------------------------------------------------

// dom0Memory sizes the control domain like a default install: a sixteenth of
// the host plus 1 GiB, between 1 and 8 GiB, never more than the host has.
func dom0Memory(total int64) int64 {
	m := min(max(total/16+gib, gib), 8*gib)
	if m > total/2 {
		m = max(total/2, 256*mib)
	}
	return m / mib * mib
}

// hostMemoryOverhead is Xen's own use of memory: about 1/128th of the host.
func hostMemoryOverhead(total int64) int64 { return total / 128 / mib * mib }

func (h *hostObjects) dom0Record() *datamodel.VMRecord {
	n := int64(len(h.machine.cpus))
	r := datamodel.NewVMRecord()
	r.UUID = datamodel.NewUUID()
	r.NameLabel = "Control domain on host: " + h.hostname
	r.NameDescription = "The domain which manages physical devices and manages other domains"
	r.AllowedOperations = []datamodel.VMOperations{
		datamodel.VMOperationsChangingMemoryLive,
		datamodel.VMOperationsChangingDynamicRange,
		datamodel.VMOperationsDataSourceOp,
		datamodel.VMOperationsMetadataExport,
	}
	r.CurrentOperations = map[string]datamodel.VMOperations{}
	r.PowerState = datamodel.VMPowerStateRunning
	r.UserVersion = 1
	r.ResidentOn = datamodel.HostRef(h.host)
	r.Affinity = datamodel.HostRef(h.host)
	r.MemoryOverhead = 0
	r.MemoryTarget = h.dom0MemTarget
	r.MemoryStaticMax = h.dom0MemTarget
	r.MemoryDynamicMax = h.dom0MemTarget
	r.MemoryDynamicMin = h.dom0MemTarget
	r.MemoryStaticMin = h.dom0MemStaticMin
	r.VCPUsParams = map[string]string{}
	r.VCPUsMax = n
	r.VCPUsAtStartup = n
	r.ActionsAfterSoftreboot = datamodel.OnSoftrebootBehaviorSoftReboot
	r.ActionsAfterShutdown = datamodel.OnNormalExitDestroy
	r.ActionsAfterReboot = datamodel.OnNormalExitRestart
	r.ActionsAfterCrash = datamodel.OnCrashBehaviourRestart
	for _, c := range h.consoles {
		r.Consoles = append(r.Consoles, datamodel.ConsoleRef(c))
	}
	r.HVMBootPolicy = ""
	r.HVMBootParams = map[string]string{}
	r.Platform = map[string]string{}
	r.OtherConfig = map[string]string{"storage_driver_domain": h.dom0}
	r.Domid = 0
	r.Domarch = "x64"
	r.LastBootCPUFlags = map[string]string{"vendor": h.machine.cpus[0].vendor, "features": h.machine.features}
	r.IsControlDomain = true
	r.Metrics = datamodel.VMMetricsRef(h.dom0Metrics)
	r.XenstoreData = map[string]string{}
	r.HasVendorDevice = false
	r.DomainType = datamodel.DomainTypePV
	r.HardwarePlatformVersion = 0
	return r
}

func (h *hostObjects) dom0MetricsRecord() *datamodel.VMMetricsRecord {
	r := datamodel.NewVMMetricsRecord()
	r.UUID = datamodel.NewUUID()
	r.MemoryActual = h.dom0MemTarget
	r.VCPUsNumber = int64(len(h.machine.cpus))
	r.VCPUsUtilisation = map[int64]float64{}
	r.VCPUsCPU = map[int64]int64{}
	r.VCPUsFlags = map[int64][]string{}
	for i := range h.machine.cpus {
		r.VCPUsUtilisation[int64(i)] = 0
		r.VCPUsCPU[int64(i)] = int64(i)
		r.VCPUsFlags[int64(i)] = []string{"online", "running"}
	}
	r.VCPUsParams = map[string]string{}
	r.State = []string{}
	r.StartTime = h.bootTime
	r.InstallTime = h.bootTime
	r.LastUpdated = h.now
	r.OtherConfig = map[string]string{}
	r.HVM = false
	r.CurrentDomainType = datamodel.DomainTypePV
	r.NUMANodes = 1
	r.NUMANodeMemory = map[int64]int64{}
	return r
}

func (h *hostObjects) consoleRecord(i int, ref string) *datamodel.ConsoleRecord {
	addr := h.address
	if addr == "" {
		addr = h.hostname
	}
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	r := datamodel.NewConsoleRecord()
	r.UUID = datamodel.NewUUID()
	r.Protocol = datamodel.ConsoleProtocolRfb
	if i == 1 {
		r.Protocol = datamodel.ConsoleProtocolVt100
	}
	r.Location = "https://" + addr + "/console?ref=" + ref
	r.VM = datamodel.VMRef(h.dom0)
	r.OtherConfig = map[string]string{}
	return r
}

// --- templates ----------------------------------------------------------------

type templateSpec struct {
	name, description, label string
	windows, uefi, secure    bool
	memory                   int64 // dynamic and static max
	memoryMin                int64 // static min
	disk                     int64
	viridian                 bool
	installMethods           string
}

var defaultTemplates = []templateSpec{
	{name: "Debian Bookworm 12", label: "debian-12", memory: 2 * gib, memoryMin: 512 * mib, disk: 10 * gib,
		description:    "Template for installing Debian 12 (Bookworm) from installation media or a network mirror.",
		installMethods: "cdrom,nfs,http,ftp"},
	{name: "Ubuntu Noble Numbat 24.04", label: "ubuntu-24.04", memory: 2 * gib, memoryMin: 1 * gib, disk: 10 * gib,
		description:    "Template for installing Ubuntu 24.04 LTS (Noble Numbat) from installation media or a network mirror.",
		installMethods: "cdrom,nfs,http,ftp"},
	{name: "Rocky Linux 9", label: "rocky-9", memory: 2 * gib, memoryMin: 1 * gib, disk: 10 * gib,
		description:    "Template for installing Rocky Linux 9 from installation media or a network mirror.",
		installMethods: "cdrom,nfs,http,ftp"},
	{name: "Windows Server 2022 (64-bit)", label: "win-server-2022", windows: true, uefi: true, viridian: true,
		memory: 4 * gib, memoryMin: 2 * gib, disk: 32 * gib,
		description:    "Template for installing Windows Server 2022 (64-bit) from installation media; boots with UEFI firmware.",
		installMethods: "cdrom"},
	{name: "Windows 11", label: "win-11", windows: true, uefi: true, secure: true, viridian: true,
		memory: 4 * gib, memoryMin: 4 * gib, disk: 64 * gib,
		description:    "Template for installing Windows 11 from installation media; needs UEFI Secure Boot and a vTPM.",
		installMethods: "cdrom"},
	{name: "Other install media", label: "other-install-media", memory: 2 * gib, memoryMin: 256 * mib, disk: 10 * gib,
		description:    "Template for operating systems that have no template of their own; install from a CD or DVD image.",
		installMethods: "cdrom"},
}

// recommendations renders the restrictions document clients read to bound a
// new VM's settings.
func (t templateSpec) recommendations() string {
	var sb strings.Builder
	sb.WriteString("<restrictions>")
	fmt.Fprintf(&sb, `<restriction field="memory-static-max" max="%d"/>`, 1536*gib)
	fmt.Fprintf(&sb, `<restriction field="vcpus-max" max="%d"/>`, 64)
	sb.WriteString(`<restriction property="number-of-vbds" max="255"/>`)
	sb.WriteString(`<restriction property="number-of-vifs" max="7"/>`)
	fmt.Fprintf(&sb, `<restriction field="has-vendor-device" value="%t"/>`, t.windows)
	if t.windows {
		fmt.Fprintf(&sb, `<restriction field="memory-static-min" min="%d"/>`, t.memoryMin)
	}
	if t.uefi {
		sb.WriteString(`<restriction field="allow-gpu-passthrough" value="1"/>`)
	}
	sb.WriteString("</restrictions>")
	return sb.String()
}

func (h *hostObjects) templateRecord(i int) *datamodel.VMRecord {
	t := defaultTemplates[i]
	r := datamodel.NewVMRecord()
	r.UUID = datamodel.NewUUID()
	r.NameLabel = t.name
	r.NameDescription = t.description
	r.AllowedOperations = []datamodel.VMOperations{
		datamodel.VMOperationsClone,
		datamodel.VMOperationsCopy,
		datamodel.VMOperationsProvision,
		datamodel.VMOperationsExport,
		datamodel.VMOperationsMetadataExport,
		datamodel.VMOperationsChangingDynamicRange,
		datamodel.VMOperationsChangingStaticRange,
		datamodel.VMOperationsChangingMemoryLimits,
		datamodel.VMOperationsChangingShadowMemory,
		datamodel.VMOperationsChangingVCPUs,
		datamodel.VMOperationsChangingNVRAM,
		datamodel.VMOperationsCreateVTPM,
		datamodel.VMOperationsDestroy,
	}
	r.CurrentOperations = map[string]datamodel.VMOperations{}
	r.PowerState = datamodel.VMPowerStateHalted
	r.UserVersion = 1
	r.IsATemplate = true
	r.IsDefaultTemplate = true
	r.MemoryOverhead = 0
	r.MemoryTarget = 0
	r.MemoryStaticMax = t.memory
	r.MemoryDynamicMax = t.memory
	r.MemoryDynamicMin = t.memory
	r.MemoryStaticMin = t.memoryMin
	r.VCPUsParams = map[string]string{}
	r.VCPUsMax = 2
	r.VCPUsAtStartup = 2
	r.ActionsAfterSoftreboot = datamodel.OnSoftrebootBehaviorSoftReboot
	r.ActionsAfterShutdown = datamodel.OnNormalExitDestroy
	r.ActionsAfterReboot = datamodel.OnNormalExitRestart
	r.ActionsAfterCrash = datamodel.OnCrashBehaviourRestart
	r.HVMBootPolicy = "BIOS order"
	r.HVMBootParams = map[string]string{"order": "cdn"}
	r.Platform = map[string]string{
		"viridian":     strconv.FormatBool(t.viridian),
		"acpi":         "1",
		"apic":         "true",
		"pae":          "true",
		"nx":           "true",
		"device-model": "qemu-upstream-compat",
	}
	if t.uefi {
		r.HVMBootParams = map[string]string{"order": "dc", "firmware": "uefi"}
		r.Platform["device-model"] = "qemu-upstream-uefi"
		r.Platform["secureboot"] = "auto"
		if t.secure {
			r.Platform["secureboot"] = "true"
		}
	}
	if t.viridian {
		r.Platform["viridian_reference_tsc"] = "true"
		r.Platform["viridian_time_ref_count"] = "true"
		r.Platform["viridian_apic_assist"] = "true"
		r.Platform["vga"] = "std"
		r.Platform["videoram"] = "8"
	}
	r.OtherConfig = map[string]string{
		"install-methods":    t.installMethods,
		"default_template":   "true",
		"base_template_name": t.name,
		"disks": fmt.Sprintf(`<provision><disk device="0" size="%d" sr="" bootable="true" type="system"/></provision>`,
			t.disk),
	}
	if !t.windows && t.label != "other-install-media" {
		r.OtherConfig["linux_template"] = "true"
	}
	r.Recommendations = t.recommendations()
	r.XenstoreData = map[string]string{}
	r.Metrics = datamodel.VMMetricsRef(h.templateMetrics[i])
	r.HasVendorDevice = false
	r.HardwarePlatformVersion = 0
	r.ReferenceLabel = t.label
	r.DomainType = datamodel.DomainTypeHVM
	r.Domid = -1
	r.BlockedOperations = map[datamodel.VMOperations]string{}
	return r
}

// templateMetricsRecord is the metrics object of a halted template: xapi
// gives every VM, template or not, a VM_metrics object.
func (h *hostObjects) templateMetricsRecord() *datamodel.VMMetricsRecord {
	r := datamodel.NewVMMetricsRecord()
	r.UUID = datamodel.NewUUID()
	r.VCPUsUtilisation = map[int64]float64{}
	r.VCPUsCPU = map[int64]int64{}
	r.VCPUsFlags = map[int64][]string{}
	r.VCPUsParams = map[string]string{}
	r.State = []string{}
	r.InstallTime = h.now
	r.LastUpdated = datamodel.Epoch
	r.OtherConfig = map[string]string{}
	r.CurrentDomainType = datamodel.DomainTypeUnspecified
	r.NUMANodeMemory = map[int64]int64{}
	return r
}

// --- network ------------------------------------------------------------------

func (h *hostObjects) managementNetworkRecord() *datamodel.NetworkRecord {
	r := datamodel.NewNetworkRecord()
	r.UUID = datamodel.NewUUID()
	r.NameLabel = "Pool-wide network associated with eth0"
	r.NameDescription = ""
	r.AllowedOperations = []datamodel.NetworkOperations{}
	r.CurrentOperations = map[string]datamodel.NetworkOperations{}
	r.PIFs = []datamodel.PIFRef{datamodel.PIFRef(h.pif)}
	r.MTU = 1500
	r.OtherConfig = map[string]string{"automatic": "true"}
	r.Bridge = "xenbr0"
	r.Managed = true
	return r
}

func (h *hostObjects) internalNetworkRecord() *datamodel.NetworkRecord {
	r := datamodel.NewNetworkRecord()
	r.UUID = datamodel.NewUUID()
	r.NameLabel = "Host internal management network"
	r.NameDescription = "Network on which guests will be assigned a private link-local IP address which can be used to talk XenAPI"
	r.AllowedOperations = []datamodel.NetworkOperations{}
	r.CurrentOperations = map[string]datamodel.NetworkOperations{}
	r.MTU = 1500
	r.OtherConfig = map[string]string{
		"is_guest_installer_network":          "true",
		"is_host_internal_management_network": "true",
		"ip_begin":                            "169.254.0.1",
		"ip_end":                              "169.254.255.254",
		"netmask":                             "255.255.0.0",
	}
	r.Bridge = "xenapi"
	r.Managed = true
	return r
}

// stableMAC derives a locally administered unicast MAC from seed.
func stableMAC(seed string) string {
	sum := sha256.Sum256([]byte("xapi-go-pif:" + seed))
	b := sum[:6]
	b[0] = (b[0] | 0x02) &^ 0x01
	return net.HardwareAddr(b).String()
}

func (h *hostObjects) pifRecord() *datamodel.PIFRecord {
	r := datamodel.NewPIFRecord()
	r.UUID = datamodel.NewUUID()
	r.Device = "eth0"
	r.Network = datamodel.NetworkRef(h.mgmtNet)
	r.Host = datamodel.HostRef(h.host)
	r.MAC = stableMAC(h.hostUUID)
	r.MTU = 1500
	r.VLAN = -1
	r.DeviceName = ""
	r.Metrics = datamodel.PIFMetricsRef(h.pifMetrics)
	r.Physical = true
	r.CurrentlyAttached = true
	r.Management = true
	r.OtherConfig = map[string]string{}
	r.IPv6 = []string{}
	r.Properties = map[string]string{"gro": "on"}
	r.Capabilities = []string{}
	r.IgmpSnoopingStatus = datamodel.PIFIgmpStatusDisabled
	ip := net.ParseIP(h.address)
	switch {
	case ip != nil && ip.To4() != nil:
		r.IPConfigurationMode = datamodel.IPConfigurationModeStatic
		r.IP = ip.String()
		r.Netmask = "255.255.255.0"
		if !ip.IsLoopback() {
			gw := ip.To4().Mask(net.CIDRMask(24, 32))
			gw[3] = 1
			if !gw.Equal(ip) {
				r.Gateway = gw.String()
			}
		}
		r.PrimaryAddressType = datamodel.PrimaryAddressTypeIPv4
	case ip != nil:
		r.IPConfigurationMode = datamodel.IPConfigurationModeNone
		r.IPv6ConfigurationMode = datamodel.IPv6ConfigurationModeStatic
		r.IPv6 = []string{ip.String() + "/64"}
		r.PrimaryAddressType = datamodel.PrimaryAddressTypeIPv6
	default:
		// A name or nothing: the address came from DHCP.
		r.IPConfigurationMode = datamodel.IPConfigurationModeDHCP
		r.PrimaryAddressType = datamodel.PrimaryAddressTypeIPv4
	}
	return r
}

func (h *hostObjects) pifMetricsRecord() *datamodel.PIFMetricsRecord {
	r := datamodel.NewPIFMetricsRecord()
	r.UUID = datamodel.NewUUID()
	r.Carrier = true
	r.VendorID = "8086"
	r.VendorName = "Intel Corporation"
	r.DeviceID = "10d3"
	r.DeviceName = "82574L Gigabit Network Connection"
	r.Speed = 1000
	r.Duplex = true
	r.PCIBusPath = "0000:00:03.0"
	r.LastUpdated = h.now
	r.OtherConfig = map[string]string{}
	return r
}

// --- storage ------------------------------------------------------------------

func (h *hostObjects) localSRRecord() *datamodel.SRRecord {
	r := datamodel.NewSRRecord()
	r.UUID = datamodel.NewUUID()
	r.NameLabel = "Local storage"
	r.NameDescription = ""
	r.AllowedOperations = []datamodel.StorageOperations{
		datamodel.StorageOperationsScan,
		datamodel.StorageOperationsForget,
		datamodel.StorageOperationsDestroy,
		datamodel.StorageOperationsPlug,
		datamodel.StorageOperationsUnplug,
		datamodel.StorageOperationsUpdate,
		datamodel.StorageOperationsPBDCreate,
		datamodel.StorageOperationsPBDDestroy,
		datamodel.StorageOperationsVDICreate,
		datamodel.StorageOperationsVDIIntroduce,
		datamodel.StorageOperationsVDIDestroy,
		datamodel.StorageOperationsVDIResize,
		datamodel.StorageOperationsVDIClone,
		datamodel.StorageOperationsVDISnapshot,
		datamodel.StorageOperationsVDIMirror,
		datamodel.StorageOperationsVDISetOnBoot,
		datamodel.StorageOperationsVDIEnableCbt,
		datamodel.StorageOperationsVDIDisableCbt,
		datamodel.StorageOperationsVDIDataDestroy,
		datamodel.StorageOperationsVDIListChangedBlocks,
	}
	r.CurrentOperations = map[string]datamodel.StorageOperations{}
	r.VDIs = []datamodel.VDIRef{}
	r.PBDs = []datamodel.PBDRef{datamodel.PBDRef(h.localPBD)}
	r.VirtualAllocation = 0
	r.PhysicalUtilisation = 0
	r.PhysicalSize = 100 * gib
	r.Type = "ext"
	r.ContentType = "user"
	r.Shared = false
	r.OtherConfig = map[string]string{
		"i18n-key":                       "local-storage",
		"i18n-original-value-name_label": "Local storage",
	}
	r.Tags = []string{}
	r.SMConfig = map[string]string{"devserial": "xapi-go-" + h.hostUUID[:8]}
	return r
}

func (h *hostObjects) dvdSRRecord() *datamodel.SRRecord {
	r := datamodel.NewSRRecord()
	r.UUID = datamodel.NewUUID()
	r.NameLabel = "DVD drives"
	r.NameDescription = "Physical DVD drives"
	r.AllowedOperations = []datamodel.StorageOperations{
		datamodel.StorageOperationsScan,
		datamodel.StorageOperationsForget,
		datamodel.StorageOperationsPlug,
		datamodel.StorageOperationsUnplug,
		datamodel.StorageOperationsUpdate,
		datamodel.StorageOperationsPBDCreate,
		datamodel.StorageOperationsPBDDestroy,
		datamodel.StorageOperationsVDIIntroduce,
	}
	r.CurrentOperations = map[string]datamodel.StorageOperations{}
	r.VDIs = []datamodel.VDIRef{}
	r.PBDs = []datamodel.PBDRef{datamodel.PBDRef(h.dvdPBD)}
	r.Type = "udev"
	r.ContentType = "iso"
	r.Shared = false
	r.OtherConfig = map[string]string{
		"i18n-key":                             "local-hotplug-cd",
		"i18n-original-value-name_label":       "DVD drives",
		"i18n-original-value-name_description": "Physical DVD drives",
	}
	r.Tags = []string{}
	r.SMConfig = map[string]string{"type": "cd"}
	return r
}

func (h *hostObjects) pbdRecord(sr string, deviceConfig map[string]string) *datamodel.PBDRecord {
	r := datamodel.NewPBDRecord()
	r.UUID = datamodel.NewUUID()
	r.Host = datamodel.HostRef(h.host)
	r.SR = datamodel.SRRef(sr)
	r.DeviceConfig = deviceConfig
	r.CurrentlyAttached = true
	r.OtherConfig = map[string]string{}
	return r
}

var (
	smFeaturesFull = map[string]int64{
		"SR_PROBE": 1, "SR_UPDATE": 1, "SR_SUPPORTS_LOCAL_CACHING": 1, "VDI_CREATE": 1,
		"VDI_DELETE": 1, "VDI_ATTACH": 1, "VDI_DETACH": 1, "VDI_UPDATE": 1, "VDI_CLONE": 1,
		"VDI_SNAPSHOT": 1, "VDI_RESIZE": 1, "VDI_MIRROR": 1, "VDI_GENERATE_CONFIG": 1,
		"VDI_RESET_ON_BOOT": 2, "VDI_CONFIG_CBT": 1, "VDI_ACTIVATE": 1, "VDI_DEACTIVATE": 1,
		"ATOMIC_PAUSE": 1, "THIN_PROVISIONING": 1,
	}
	smFeaturesUdev = map[string]int64{
		"SR_PROBE": 1, "SR_UPDATE": 1, "VDI_INTRODUCE": 1, "VDI_ATTACH": 1,
		"VDI_DETACH": 1, "VDI_UPDATE": 1, "VDI_GENERATE_CONFIG": 1,
	}
	smFeaturesISO = map[string]int64{
		"SR_PROBE": 1, "SR_UPDATE": 1, "VDI_CREATE": 1, "VDI_DELETE": 1, "VDI_INTRODUCE": 1,
		"VDI_ATTACH": 1, "VDI_DETACH": 1, "VDI_UPDATE": 1, "VDI_GENERATE_CONFIG": 1,
	}
)

func smRecord(typ, label, description string, features map[string]int64) *datamodel.SMRecord {
	r := datamodel.NewSMRecord()
	r.UUID = datamodel.NewUUID()
	r.NameLabel = label
	r.NameDescription = description
	r.Type = typ
	r.Vendor = "xapi-go"
	r.Copyright = ""
	r.Version = "1.0"
	r.RequiredAPIVersion = "1.0"
	r.Configuration = map[string]string{}
	if typ == "ext" {
		r.Configuration["device"] = "local device path (required) (e.g. /dev/sda3)"
	}
	r.Features = make(map[string]int64, len(features))
	for k, v := range features {
		r.Features[k] = v
		r.Capabilities = append(r.Capabilities, k)
	}
	slices.Sort(r.Capabilities)
	r.HostPendingFeatures = map[datamodel.HostRef][]string{}
	r.OtherConfig = map[string]string{}
	r.DriverFilename = "/opt/xensource/sm/" + strings.ToUpper(typ[:1]) + typ[1:] + "SR"
	r.RequiredClusterStack = []string{}
	r.SupportedImageFormats = []datamodel.ImageFormatType{}
	return r
}

// --- machine facts --------------------------------------------------------------

type cpuFacts struct {
	vendor, modelname, stepping, flags string
	family, model, speed               int64
	physicalID                         string
}

func (c cpuFacts) speedText() string { return strconv.FormatInt(c.speed, 10) + ".000" }

type machineInfo struct {
	cpus           []cpuFacts
	sockets        int
	threadsPerCore int
	features       string
	memTotal       int64
	memFree        int64
	bootTime       time.Time
	kernel, osName string
	bios           map[string]string
}

// readMachineInfo collects, best effort, the facts of the machine this server
// runs on; every value has a plausible fallback.
func readMachineInfo() machineInfo {
	m := machineInfo{cpus: readCPUInfo(), threadsPerCore: 1}
	if len(m.cpus) == 0 {
		n := max(runtime.NumCPU(), 1)
		for range n {
			m.cpus = append(m.cpus, cpuFacts{})
		}
	}
	sockets := map[string]bool{}
	for i := range m.cpus {
		c := &m.cpus[i]
		if c.vendor == "" {
			c.vendor = "GenuineIntel"
		}
		if c.modelname == "" {
			c.modelname = "Generic x86-64 processor"
		}
		if c.speed <= 0 {
			c.speed = 2000
		}
		if c.family == 0 {
			c.family = 6
		}
		if c.stepping == "" {
			c.stepping = "0"
		}
		if c.flags == "" {
			c.flags = "fpu de tsc msr pae cx8 apic sep pge cmov pat clflush mmx fxsr sse sse2 ht syscall nx lm"
		}
		sockets[c.physicalID] = true
	}
	m.sockets = max(len(sockets), 1)
	sum := sha256.Sum256([]byte(m.cpus[0].flags))
	hx := hex.EncodeToString(sum[:])
	groups := make([]string, 0, 8)
	for i := 0; i < 64; i += 8 {
		groups = append(groups, hx[i:i+8])
	}
	m.features = strings.Join(groups, "-")

	mem := readKeyValues("/proc/meminfo", ":")
	m.memTotal = parseKB(mem["MemTotal"])
	m.memFree = parseKB(mem["MemAvailable"])
	if m.memFree == 0 {
		m.memFree = parseKB(mem["MemFree"])
	}
	if m.memTotal <= 0 {
		m.memTotal = 8 * gib
	}
	if m.memFree <= 0 || m.memFree > m.memTotal {
		m.memFree = m.memTotal / 2
	}
	if st := readKeyValues("/proc/stat", " "); st["btime"] != "" {
		if v, err := strconv.ParseInt(st["btime"], 10, 64); err == nil && v > 0 {
			m.bootTime = time.Unix(v, 0).UTC()
		}
	}
	m.kernel = readTrimmed("/proc/sys/kernel/osrelease", "6.1.0")
	m.osName = "Linux"
	if osr := readKeyValues("/etc/os-release", "="); osr["PRETTY_NAME"] != "" {
		m.osName = strings.Trim(osr["PRETTY_NAME"], `"`)
	}
	dmi := func(name, def string) string { return readTrimmed("/sys/class/dmi/id/"+name, def) }
	m.bios = map[string]string{
		"bios-vendor":             dmi("bios_vendor", "xapi-go"),
		"bios-version":            dmi("bios_version", "1.0"),
		"system-manufacturer":     dmi("sys_vendor", "xapi-go"),
		"system-product-name":     dmi("product_name", "xapi-go host"),
		"system-version":          dmi("product_version", ""),
		"system-serial-number":    dmi("product_serial", ""),
		"baseboard-manufacturer":  dmi("board_vendor", ""),
		"baseboard-product-name":  dmi("board_name", ""),
		"baseboard-version":       dmi("board_version", ""),
		"baseboard-serial-number": dmi("board_serial", ""),
		"enclosure-asset-tag":     dmi("chassis_asset_tag", ""),
	}
	return m
}

// readCPUInfo parses /proc/cpuinfo into one entry per logical CPU.
func readCPUInfo() []cpuFacts {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []cpuFacts
	var cur *cpuFacts
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "processor" {
			out = append(out, cpuFacts{})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil {
			continue
		}
		switch k {
		case "vendor_id":
			cur.vendor = v
		case "model name":
			cur.modelname = v
		case "cpu family":
			cur.family, _ = strconv.ParseInt(v, 10, 64)
		case "model":
			cur.model, _ = strconv.ParseInt(v, 10, 64)
		case "stepping":
			cur.stepping = v
		case "cpu MHz":
			if mhz, err := strconv.ParseFloat(v, 64); err == nil {
				cur.speed = int64(mhz + 0.5)
			}
		case "flags":
			cur.flags = v
		case "physical id":
			cur.physicalID = v
		}
	}
	return out
}

// readKeyValues reads "key<sep>value" lines; it returns an empty map on error.
func readKeyValues(path, sep string) map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, sep); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// parseKB converts a /proc/meminfo value ("123 kB") to bytes.
func parseKB(s string) int64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0
	}
	return v * kib
}

func readTrimmed(path, def string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return s
	}
	return def
}

// addRoles creates the role objects: one per permission (no subroles) and the
// six user-facing roles whose subroles are the permissions they grant.
func (s *Server) addRoles(b *batchBuilder) {
	for _, name := range datamodel.Roles {
		if datamodel.InternalRoles[name] {
			continue
		}
		r := datamodel.NewRoleRecord()
		r.NameLabel = name
		b.add(r)
	}
}
