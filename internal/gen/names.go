package gen

import (
	"go/token"
	"strings"
	"unicode"
)

var initialisms = map[string]string{
	"vm": "VM", "vms": "VMs", "vdi": "VDI", "vdis": "VDIs", "sr": "SR", "srs": "SRs", "pif": "PIF", "pifs": "PIFs",
	"vif": "VIF", "vifs": "VIFs", "vbd": "VBD", "vbds": "VBDs", "pbd": "PBD", "pbds": "PBDs", "uuid": "UUID",
	"id": "ID", "cpu": "CPU", "cpus": "CPUs", "ha": "HA", "hvm": "HVM", "pv": "PV", "pci": "PCI", "pgpu": "PGPU",
	"vgpu": "VGPU", "gpu": "GPU", "usb": "USB", "pusb": "PUSB", "vusb": "VUSB", "dr": "DR", "pvs": "PVS",
	"sdn": "SDN", "sriov": "SRIOV", "vtpm": "VTPM", "vmpp": "VMPP", "vmss": "VMSS", "sm": "SM", "ip": "IP",
	"ipv4": "IPv4", "ipv6": "IPv6", "mac": "MAC", "mtu": "MTU", "url": "URL", "api": "API", "nbd": "NBD",
	"xml": "XML", "rpc": "RPC", "vlan": "VLAN", "dns": "DNS", "ssl": "SSL", "tls": "TLS", "ssh": "SSH",
	"nvram": "NVRAM", "os": "OS", "vcpus": "VCPUs", "numa": "NUMA", "iscsi": "ISCSI", "uefi": "UEFI",
}

// goName turns a XenAPI identifier (snake case, possibly with odd characters)
// into an exported Go identifier.
func goName(s string) string {
	parts := strings.FieldsFunc(s, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	var b strings.Builder
	for _, p := range parts {
		if v, ok := initialisms[strings.ToLower(p)]; ok && (p == strings.ToLower(p) || p == v || strings.ToUpper(p) == p) {
			b.WriteString(v)
			continue
		}
		r := []rune(p)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	out := b.String()
	if out == "" {
		out = "X"
	}
	if unicode.IsDigit(rune(out[0])) {
		out = "N" + out
	}
	return out
}

// localName turns a parameter name into an unexported Go identifier.
func localName(s string) string {
	n := goName(s)
	r := []rune(n)
	// lower-case the leading run of capitals (VMRef -> vmRef, UUID -> uuid)
	i := 0
	for i < len(r) && unicode.IsUpper(r[i]) {
		i++
	}
	if i > 1 && i < len(r) {
		i--
	}
	for j := 0; j < i; j++ {
		r[j] = unicode.ToLower(r[j])
	}
	if i == 0 && len(r) > 0 {
		r[0] = unicode.ToLower(r[0])
	}
	out := string(r)
	if token.IsKeyword(out) || reservedLocals[out] {
		out += "_"
	}
	return out
}

var reservedLocals = map[string]bool{
	"ctx": true, "call": true, "args": true, "srv": true, "err": true, "string": true, "int": true,
	"bool": true, "error": true, "any": true, "len": true, "new": true, "make": true, "copy": true,
	"close": true, "time": true, "datamodel": true, "context": true, "res": true,
}

// typeIdent turns a canonical type string into an identifier fragment.
func typeIdent(t string) string {
	r := strings.NewReplacer("<", "Of", ",", "To", ">", "", ":", "", "-", "_")
	return r.Replace(t)
}
