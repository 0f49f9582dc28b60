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
