package xapi_test

import (
	"slices"
	"testing"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

func TestBlobCreateDestroy(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	url := srv.URL
	tests := []struct {
		name       string
		params     []any
		wantMime   string
		wantPublic bool
	}{
		{"given type", []any{"text/plain", true}, "text/plain", true},
		{"empty type", []any{"", false}, "application/octet-stream", false},
		{"public defaults to false", []any{"image/png"}, "image/png", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustCall(t, url, "blob.create", append([]any{s}, tc.params...)...).(string)
			r := record(t, url, s, "blob", b)
			if r["mime_type"] != tc.wantMime || r["public"] != tc.wantPublic || vmNum(r["size"]) != 0 ||
				r["name_label"] != "" || r["name_description"] != "" || r["uuid"] == "" {
				t.Fatalf("record %v", r)
			}
			if lu, _ := r["last_updated"].(string); lu != datamodel.FormatDateTime(datamodel.Epoch) {
				t.Fatalf("last_updated %v", r["last_updated"])
			}
			mustCall(t, url, "blob.destroy", s, b)
			if exists(t, url, s, "blob", b) {
				t.Fatal("blob still there")
			}
		})
	}

	// A destroyed blob leaves the blobs maps that name it.
	vm := newVM(t, url, s, "blob-vm")
	pool := refList(mustCall(t, url, "pool.get_all", s))[0]
	b := mustCall(t, url, "blob.create", s, "text/plain", false).(string)
	keep := mustCall(t, url, "blob.create", s, "text/plain", false).(string)
	storeSet(t, srv.Store, datamodel.VMClass, vm, "blobs", map[string]datamodel.BlobRef{"a": datamodel.BlobRef(b), "b": datamodel.BlobRef(keep)})
	storeSet(t, srv.Store, datamodel.PoolClass, pool, "blobs", map[string]datamodel.BlobRef{"p": datamodel.BlobRef(b)})
	mustCall(t, url, "blob.destroy", s, b)
	if got := record(t, url, s, "VM", vm)["blobs"].(map[string]any); len(got) != 1 || got["b"] != keep {
		t.Fatalf("VM.blobs %v", got)
	}
	if got := record(t, url, s, "pool", pool)["blobs"].(map[string]any); len(got) != 0 {
		t.Fatalf("pool.blobs %v", got)
	}
	devFail(t, url, []string{"HANDLE_INVALID", "blob", b}, "blob.destroy", s, b)
	if !slices.Contains(refList(mustCall(t, url, "blob.get_all", s)), keep) {
		t.Fatal("other blob gone")
	}
}
