// Package guest turns the key/value tree a guest agent publishes (through
// xenstore on Xen; through the simulator or a qemu-guest-agent adapter
// elsewhere) into the fields of a XenAPI VM_guest_metrics object.
//
// # Tree layout
//
// A tree is a flat map from slash-separated paths, relative to the domain's
// xenstore home /local/domain/<domid>, to values. Parse also accepts
// absolute "/local/domain/<domid>/…" keys and stray slashes. The keys read
// are those the Linux xe-guest-utilities daemon (xe-daemon) and the Windows
// PV tools write, and that xapi's xapi_guest_agent.ml maps:
//
//	attr/PVAddons/Installed            "1"
//	attr/PVAddons/MajorVersion         → PV_drivers_version["major"]
//	attr/PVAddons/MinorVersion         → PV_drivers_version["minor"]
//	attr/PVAddons/MicroVersion         → PV_drivers_version["micro"] ("-1" if absent)
//	attr/PVAddons/BuildVersion         → PV_drivers_version["build"]
//	attr/PVAddons/Application          → PV_drivers_version["application"]
//	drivers/<n>  "Vendor NAME ver attr" → PV_drivers_version[lower(NAME)] = "Vendor ver attr" (Windows)
//	data/os_name                       → os_version["name"] (Windows: "name|windir|boot device")
//	data/os_uname                      → os_version["uname"]
//	data/os_distro                     → os_version["distro"]
//	data/os_majorver, data/os_minorver → os_version["major"], ["minor"]
//	attr/os/spmajor, attr/os/spminor   → os_version["spmajor"], ["spminor"] (Windows)
//	data/host_name_dns (+ data/domain) → netbios_name["host_name"] (Windows)
//	data/meminfo_total, data/meminfo_free (KiB, MemTotal and MemAvailable)
//	attr/vif/<n>/ipv4/<m>              → networks["<n>/ipv4/<m>"]; the lowest m also → "<n>/ip"
//	attr/vif/<n>/ipv6/<m>              → networks["<n>/ipv6/<m>"]
//	xenserver/attr/net-sriov-vf/<n>/…  → as attr/vif (SR-IOV VFs)
//	attr/eth<n>/ip, attr/eth<n>/ipv6/<m>/addr → legacy agents, used only when attr/vif is empty;
//	                                     "<n>/ip" and "<n>/ipv4/0", "<n>/ipv6/<m>"
//	control/<key>                      → other[<key>] (feature-balloon, feature-shutdown, …)
//	data/cant_suspend_reason           → replaces other["feature-suspend"] by other["data-cant-suspend-reason"]
//	data/ts                            → other["data-ts"]
//	data/device_id                     → DeviceID
//	feature/hotplug/vbd, feature/hotplug/vif "1"/"0" → can_use_hotplug_vbd/vif yes/no
//	device/vif/<n>/state, device/vbd/<n>/state "4" (frontend connected)
//	data/volumes/<n>/…                 disk data; ignored (VM_guest_metrics.disks has no data)
//	data/updated                       the agent's "I wrote a batch" stamp, a date
//	                                   string ("Mon Jan _2 15:04:05 2006")
//
// Assumptions, where xapi takes the value from elsewhere:
//
//   - PV_drivers_detected comes from xenopsd in xapi. Here it is true when a
//     vif or vbd frontend reached state 4 (connected) or the PV add-ons
//     announce themselves (attr/PVAddons/Installed = "1" or a MajorVersion).
//   - Live is true once data/updated exists (xapi treats the tree as valid
//     only then). LastUpdated is the caller's clock, as in xapi.
//   - memory: xapi no longer fills VM_guest_metrics.memory (the field "has no
//     data"); the meminfo values are exposed as Memory (raw KiB strings) and
//     as byte counts for the memory_internal_free RRD.
//   - An IP index that is not a decimal integer is skipped (xapi logs an
//     error and drops that interface's addresses).
package guest
