// Command schemaimport regenerates schema/model.json from the reference data
// model facts (xenapi-datamodel.json). It is run by hand when the reference changes.
package main
