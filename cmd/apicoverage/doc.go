// Command apicoverage prints how many of the model's explicit messages the
// server implements (the rest answer NOT_IMPLEMENTED). With -v it lists them.
package main
