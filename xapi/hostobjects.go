package xapi

import (
	"github.com/xapi-go/xapi-go/datamodel"
)

// buildHostObjects adds the objects of a fresh one-host pool to b.
func (s *Server) buildHostObjects(b *batchBuilder) {
	hostRef := datamodel.NewRef()
	s.hostRef = datamodel.HostRef(hostRef)
	host := datamodel.NewHostRecord()
	host.UUID = datamodel.NewUUID()
	host.NameLabel = s.cfg.Hostname
	host.Hostname = s.cfg.Hostname
	host.Address = s.cfg.Address
	host.APIVersionMajor = datamodel.APIVersionMajor
	host.APIVersionMinor = datamodel.APIVersionMinor
	host.APIVersionVendor = "XenSource"
	host.Enabled = true
	b.ops = append(b.ops, createOp(hostRef, host))

	pool := datamodel.NewPoolRecord()
	pool.Master = s.hostRef
	s.poolRef = datamodel.PoolRef(b.add(pool))
	s.addRoles(b)
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
