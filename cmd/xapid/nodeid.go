package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/xapi"
)

// Files kept in the data dir next to the store.
const (
	// nodeIDFile holds this host's raft node id (one line). After a
	// pool.join it is the host's uuid in the pool.
	nodeIDFile = "node-id"
	// joinMarkerFile exists while a pool.join restart is under way; it holds
	// the JoinInfo (JSON) so that a host that crashes mid-join resumes it.
	joinMarkerFile = "pending-join.json"
	// ejectMarkerFile exists while the restart after pool.eject is under way
	// (between wiping the replica and bootstrapping a one-host pool).
	ejectMarkerFile = "pending-eject"
)

// nodeIDSource says where resolveNodeID found the node id (for the log).
type nodeIDSource string

const (
	nodeIDFromFlag   nodeIDSource = "flag"
	nodeIDFromFile   nodeIDSource = "file"
	nodeIDFromLegacy nodeIDSource = "hostname (data dir from before node-id files)"
	nodeIDNew        nodeIDSource = "new"
)

// resolveNodeID returns this host's raft node id: the --node-id flag if
// given; else DATA/node-id; else, for a data dir that already holds a raft
// log (made before node ids were stored), the host name, as before; else a
// new uuid. A node id that was not read from the file is written to it, so it
// stays the same across restarts.
func resolveNodeID(dataDir, flagID, hostname string) (string, nodeIDSource, error) {
	if flagID != "" {
		return flagID, nodeIDFromFlag, nil
	}
	stored, err := readNodeID(dataDir)
	if err != nil {
		return "", "", err
	}
	if stored != "" {
		return stored, nodeIDFromFile, nil
	}
	id, src := datamodel.NewUUID(), nodeIDNew
	if _, err := os.Stat(filepath.Join(dataDir, "raft")); err == nil {
		if hostname == "" {
			return "", "", errors.New("node id: the data dir holds a raft log but no node-id file, and there is no host name to use (give --node-id)")
		}
		id, src = hostname, nodeIDFromLegacy
	}
	if err := writeNodeID(dataDir, id); err != nil {
		return "", "", err
	}
	return id, src, nil
}

// readNodeID returns the stored node id, or "" if there is none.
func readNodeID(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, nodeIDFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeNodeID stores the node id (atomically).
func writeNodeID(dataDir, id string) error {
	if err := writeFileDurable(filepath.Join(dataDir, nodeIDFile), []byte(id+"\n")); err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	return nil
}

// joinMarker is the content of the pending-join marker: the JoinInfo, and
// whether the old replica has already been wiped (a host resuming a join
// after that point must not wipe again: by then the pool may count on what
// its new replica stored).
type joinMarker struct {
	xapi.JoinInfo
	Wiped bool `json:"wiped"`
}

// readJoinMarker returns the pending join, or nil if there is none.
func readJoinMarker(dataDir string) (*joinMarker, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, joinMarkerFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pending join: %w", err)
	}
	var m joinMarker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("pending join: %s: %w", filepath.Join(dataDir, joinMarkerFile), err)
	}
	if m.MasterURL == "" || m.NodeID == "" {
		return nil, fmt.Errorf("pending join: %s lacks master_url or node_id", filepath.Join(dataDir, joinMarkerFile))
	}
	return &m, nil
}

// writeJoinMarker records a pending join (atomically).
func writeJoinMarker(dataDir string, m *joinMarker) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileDurable(filepath.Join(dataDir, joinMarkerFile), append(b, '\n')); err != nil {
		return fmt.Errorf("pending join: %w", err)
	}
	return nil
}

// removeMarker deletes a marker file; a missing one is fine.
func removeMarker(dataDir, name string) error {
	if err := os.Remove(filepath.Join(dataDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(dataDir)
}

// hasMarker reports whether the marker file exists.
func hasMarker(dataDir, name string) bool {
	_, err := os.Stat(filepath.Join(dataDir, name))
	return err == nil
}

// writeFileDurable writes data to path atomically (writeFileAtomic) and
// syncs the directory so that the rename survives a crash.
func writeFileDurable(path string, data []byte) error {
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
