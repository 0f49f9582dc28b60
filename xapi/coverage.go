package xapi

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
)

// CoverageReport says which explicit (non-implicit) messages are implemented.
type CoverageReport struct {
	Total       int
	Implemented []string
	Missing     []string
}

// Coverage probes every explicit message of the model: it calls the message's
// implementation with zero-valued arguments as the local superuser and counts
// it as implemented unless it answers NOT_IMPLEMENTED. Run it on a throwaway
// server: implemented messages may act on their (mostly invalid) arguments.
func (s *Server) Coverage(ctx context.Context) CoverageReport {
	var r CoverageReport
	for _, m := range s.methods.list {
		if m.Implicit != "" || m.Call == nil {
			continue
		}
		r.Total++
		if s.probe(ctx, m) {
			r.Implemented = append(r.Implemented, m.Name)
		} else {
			r.Missing = append(r.Missing, m.Name)
		}
	}
	sort.Strings(r.Implemented)
	sort.Strings(r.Missing)
	return r
}

func (s *Server) probe(ctx context.Context, m *Method) (implemented bool) {
	defer func() {
		if p := recover(); p != nil {
			implemented = true // it ran code of its own
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	args := make([]any, len(m.Params))
	for i, p := range m.Params {
		args[i] = p.Type.Zero()
	}
	rec := datamodel.NewSessionRecord()
	rec.IsLocalSuperuser = true
	call := &Call{Server: s, Method: m, Session: datamodel.SessionRef(datamodel.NullRef), SessionRec: rec, Task: datamodel.TaskRef(datamodel.NullRef)}
	_, err := m.Call(ctx, s.impl, call, args)
	var de *datamodel.Error
	return !(errors.As(err, &de) && de.Code == datamodel.CodeNotImplemented)
}

// String renders the report as the api-coverage target prints it.
func (r CoverageReport) String() string {
	return fmt.Sprintf("explicit messages implemented: %d of %d (%.1f%%)", len(r.Implemented), r.Total, 100*float64(len(r.Implemented))/float64(max(r.Total, 1)))
}
