// Command xapigen generates datamodel/*.gen.go and xapi/*.gen.go from schema/model.json.
package main
