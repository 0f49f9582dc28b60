// Package store is the replicated object store of the pool database.
//
// Every host holds a full replica of the database: a hashicorp/raft finite
// state machine whose state is a set of in-memory tables, one per class, with
// uuid and name_label indexes. The raft log and stable store live in badger
// (see logstore.go), snapshots in a raft.FileSnapshotStore; a restart replays
// the latest snapshot plus the log, so nothing acknowledged is lost.
//
// Writes are batches of generic operations (Op: create, set a field, delete,
// map and set edits) carrying class, ref and wire field names, so the growth
// of the schema never changes the log format. Store.Apply submits a batch
// through raft on the leader; the FSM applies it atomically and
// deterministically on every replica and reports a *datamodel.Error when an
// operation does not fit the current state, in which case nothing of the
// batch is applied.
//
// Reads (Get, List, RefByUUID, RefsByName, Count) never go through raft and
// never wait for the applier for more than the short moment it takes to
// install an already validated batch: records are immutable once stored
// (copy on write), so readers share them freely.
//
// Subscribers (Subscribe) receive every applied entry as a ChangeSet, in raft
// index order, on every replica; package events builds on that.
//
// Only this package imports raft and badger.
package store
