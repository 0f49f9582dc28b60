package xapi

import (
	"context"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
)

// hostMessages implements the explicit messages of class host built so far.
type hostMessages struct {
	UnimplementedHostMessages
	s *Server
}

// GetServertime is XenCenter's heartbeat: the host's clock in UTC.
func (m *hostMessages) GetServertime(ctx context.Context, call *Call, host datamodel.HostRef) (time.Time, error) {
	if _, err := m.s.lookup(datamodel.HostClass, host); err != nil {
		return time.Time{}, err
	}
	return time.Now().UTC(), nil
}

// Disable is host.disable: the host takes no new VMs (placement skips it).
func (m *hostMessages) Disable(ctx context.Context, call *Call, host datamodel.HostRef, autoEnable bool) error {
	return m.setEnabled(ctx, host, false)
}

// Enable is host.enable.
func (m *hostMessages) Enable(ctx context.Context, call *Call, host datamodel.HostRef) error {
	return m.setEnabled(ctx, host, true)
}

func (m *hostMessages) setEnabled(ctx context.Context, host datamodel.HostRef, on bool) error {
	if _, err := m.s.lookup(datamodel.HostClass, host); err != nil {
		return err
	}
	return m.s.apply(ctx, mustSet(datamodel.HostClass, string(host), "enabled", on))
}

// IsInEmergencyMode is host.is_in_emergency_mode: true while this host
// cannot reach its pool's database (see emergencyCalls).
func (m *hostMessages) IsInEmergencyMode(ctx context.Context, call *Call) (bool, error) {
	return m.s.emergency.Load(), nil
}
