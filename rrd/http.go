package rrd

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// HostUUID is the uuid of the host whose stats the store holds.
	HostUUID func() string
	// Authorize checks the caller (its session_id query parameter or cookie);
	// a non-nil error answers 403. Nil lets every request through.
	Authorize func(r *http.Request) error
}

// NewHandler serves GET /rrd_updates, /host_rrd (/host_rrds) and /vm_rrd
// (/vm_rrds) from s, in XML or JSON as the request asks (NegotiateJSON).
// Replies carry Content-Length, so HTTP/1.0 clients that read until the
// connection closes (XenCenter) and HTTP/1.1 clients both work.
func NewHandler(s *Store, o HandlerOptions) http.Handler {
	mux := http.NewServeMux()
	guard := func(h func(w http.ResponseWriter, r *http.Request, json bool) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			if o.Authorize != nil {
				if err := o.Authorize(r); err != nil {
					http.Error(w, err.Error(), http.StatusForbidden)
					return
				}
			}
			json := NegotiateJSON(r.Header.Get("Accept"), r.URL.Query())
			if err := h(w, r, json); err != nil {
				status := http.StatusInternalServerError
				switch {
				case errors.Is(err, ErrBadQuery):
					status = http.StatusBadRequest
				case errors.Is(err, ErrNotFound):
					status = http.StatusNotFound
				}
				http.Error(w, err.Error(), status)
			}
		}
	}
	reply := func(w http.ResponseWriter, json bool, body *bytes.Buffer) {
		ct := "text/xml"
		if json {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write(body.Bytes())
	}
	updates := guard(func(w http.ResponseWriter, r *http.Request, json bool) error {
		q, err := ParseUpdatesQuery(r.URL.Query())
		if err != nil {
			return err
		}
		q.JSON = json
		var body bytes.Buffer
		if err := s.WriteUpdates(&body, q, hostUUID(o)); err != nil {
			return err
		}
		reply(w, json, &body)
		return nil
	})
	hostDump := guard(func(w http.ResponseWriter, r *http.Request, json bool) error {
		var body bytes.Buffer
		if err := s.WriteHostRRD(&body, json); err != nil {
			return err
		}
		reply(w, json, &body)
		return nil
	})
	vmDump := guard(func(w http.ResponseWriter, r *http.Request, json bool) error {
		uuid := r.URL.Query().Get("uuid")
		if uuid == "" {
			return badQuery("missing uuid")
		}
		var body bytes.Buffer
		if err := s.WriteVMRRD(&body, uuid, json); err != nil {
			return err
		}
		reply(w, json, &body)
		return nil
	})
	mux.Handle("/rrd_updates", updates)
	mux.Handle("/host_rrd", hostDump)
	mux.Handle("/host_rrds", hostDump)
	mux.Handle("/vm_rrd", vmDump)
	mux.Handle("/vm_rrds", vmDump)
	return mux
}

func hostUUID(o HandlerOptions) string {
	if o.HostUUID == nil {
		return ""
	}
	return o.HostUUID()
}
