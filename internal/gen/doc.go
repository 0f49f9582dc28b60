// Package gen generates the typed data model (package datamodel) and the API
// dispatch tables and message interfaces (package xapi) from the schema.
package gen
