package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/xapi-go/xapi-go/internal/schemaimport"
)

func main() {
	in := flag.String("in", "../shared/reference/xenapi-datamodel.json", "reference data model")
	out := flag.String("out", "schema/model.json", "schema file to write")
	flag.Parse()
	b, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	m, err := schemaimport.Import(b)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	data, err := schemaimport.Marshal(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
