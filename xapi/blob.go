package xapi

import (
	"context"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// blobMessages implements blob.create and blob.destroy.
type blobMessages struct {
	UnimplementedBlobMessages
	s *Server
}

// Create implements blob.create as xapi does: an empty blob (size 0,
// last_updated the epoch, empty name) whose mime_type defaults to
// application/octet-stream.
func (m *blobMessages) Create(ctx context.Context, call *Call, mimeType string, public bool) (datamodel.BlobRef, error) {
	r := datamodel.NewBlobRecord()
	r.UUID = datamodel.NewUUID()
	r.MimeType = mimeType
	if r.MimeType == "" {
		r.MimeType = "application/octet-stream"
	}
	r.Public = public
	r.Size = 0
	r.LastUpdated = datamodel.Epoch
	r.NameLabel, r.NameDescription = "", ""
	ref := datamodel.NewRef()
	if err := m.s.apply(context.WithoutCancel(ctx), store.Create(ref, r)); err != nil {
		return "", err
	}
	return datamodel.BlobRef(ref), nil
}

// Destroy implements blob.destroy: the blob leaves every blobs map naming it
// (xapi cleans the VMs'; the pool's, hosts', networks' and SRs' are cleaned
// too so that no map keeps a dangling reference), then is removed.
func (m *blobMessages) Destroy(ctx context.Context, call *Call, self datamodel.BlobRef) error {
	s := m.s
	return s.deviceWrite(ctx, func() ([]store.Op, error) {
		if _, err := s.lookup(datamodel.BlobClass, self); err != nil {
			return nil, err
		}
		var ops []store.Op
		drop := func(c *datamodel.Class, ref string, blobs map[string]datamodel.BlobRef) {
			for name, b := range blobs {
				if b == self {
					op, err := store.MapRemove(c, ref, "blobs", name)
					if err != nil {
						panic(err) // field names are fixed by the model
					}
					ops = append(ops, op)
				}
			}
		}
		for _, e := range s.store.List(datamodel.VMClass) {
			drop(datamodel.VMClass, e.Ref, e.Obj.(*datamodel.VMRecord).Blobs)
		}
		for _, e := range s.store.List(datamodel.PoolClass) {
			drop(datamodel.PoolClass, e.Ref, e.Obj.(*datamodel.PoolRecord).Blobs)
		}
		for _, e := range s.store.List(datamodel.HostClass) {
			drop(datamodel.HostClass, e.Ref, e.Obj.(*datamodel.HostRecord).Blobs)
		}
		for _, e := range s.store.List(datamodel.NetworkClass) {
			drop(datamodel.NetworkClass, e.Ref, e.Obj.(*datamodel.NetworkRecord).Blobs)
		}
		for _, e := range s.store.List(datamodel.SRClass) {
			drop(datamodel.SRClass, e.Ref, e.Obj.(*datamodel.SRRecord).Blobs)
		}
		return append(ops, store.Delete(datamodel.BlobClass, string(self))), nil
	})
}
