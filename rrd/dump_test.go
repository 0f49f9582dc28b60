package rrd

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

type dumpDoc struct {
	Version    string `xml:"version"`
	Step       int64  `xml:"step"`
	LastUpdate int64  `xml:"lastupdate"`
	DS         []struct {
		Name string `xml:"name"`
		Type string `xml:"type"`
		Min  string `xml:"min"`
		Max  string `xml:"max"`
	} `xml:"ds"`
	RRA []struct {
		CF        string   `xml:"cf"`
		PDPPerRow int64    `xml:"pdp_per_row"`
		XFF       string   `xml:"params>xff"`
		CDP       []string `xml:"cdp_prep>ds>value"`
		Rows      []struct {
			V []string `xml:"v"`
		} `xml:"database>row"`
	} `xml:"rra"`
}

const goldenDumpPrefix = `<?xml version="1.0" encoding="UTF-8"?>
<rrd><version>0003</version><step>5</step><lastupdate>1728000012</lastupdate>` +
	`<ds><name>cpu0</name><type>GAUGE</type><minimal_heartbeat>300</minimal_heartbeat><min>0.0</min><max>1</max><last_ds>0.25</last_ds><value>0.0</value><unknown_sec>0</unknown_sec></ds>` +
	`<ds><name>vif_0_rx</name><type>DERIVE</type><minimal_heartbeat>300</minimal_heartbeat><min>0.0</min><max>Infinity</max><last_ds>12000</last_ds><value>0.0</value><unknown_sec>0</unknown_sec></ds>` +
	`<rra><cf>AVERAGE</cf><pdp_per_row>1</pdp_per_row><params><xff>0.5</xff></params><cdp_prep>` +
	`<ds><primary_value>0.0</primary_value><secondary_value>0.0</secondary_value><value>0.25</value><unknown_datapoints>0</unknown_datapoints></ds>` +
	`<ds><primary_value>0.0</primary_value><secondary_value>0.0</secondary_value><value>1000</value><unknown_datapoints>0</unknown_datapoints></ds>` +
	`</cdp_prep><database><row><v>NaN</v><v>NaN</v></row>`

const goldenDumpSuffix = `<row><v>NaN</v><v>1000</v></row><row><v>0.25</v><v>1000</v></row></database></rra>` +
	`<rra><cf>AVERAGE</cf><pdp_per_row>12</pdp_per_row><params><xff>0.5</xff></params><cdp_prep>`

func TestDumpXML(t *testing.T) {
	s := fixture(t)
	var b bytes.Buffer
	if err := s.WriteVMRRD(&b, vmB, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, goldenDumpPrefix) {
		t.Errorf("prefix:\n%s", out[:min(len(out), len(goldenDumpPrefix)+100)])
	}
	if !strings.Contains(out, goldenDumpSuffix) {
		t.Errorf("missing newest rows / next rra %q", goldenDumpSuffix)
	}
	if !strings.HasSuffix(out, "</database></rra></rrd>") {
		t.Errorf("suffix %q", out[len(out)-40:])
	}
	var d dumpDoc
	if err := xml.Unmarshal(b.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d.Version != "0003" || d.Step != 5 || d.LastUpdate != t0+12 || len(d.DS) != 2 {
		t.Fatalf("header %+v", d)
	}
	// XenCenter's ArchiveMaintainer understands exactly these archives.
	wantPDP := []int64{1, 12, 720, 17280}
	wantRows := []int{120, 120, 168, 366}
	if len(d.RRA) != 4 {
		t.Fatalf("%d archives", len(d.RRA))
	}
	for i, a := range d.RRA {
		if a.CF != "AVERAGE" || a.PDPPerRow != wantPDP[i] || len(a.Rows) != wantRows[i] || len(a.CDP) != 2 {
			t.Errorf("rra %d: cf %s pdp %d rows %d", i, a.CF, a.PDPPerRow, len(a.Rows))
		}
		for _, row := range a.Rows {
			if len(row.V) != 2 {
				t.Fatalf("rra %d row has %d values", i, len(row.V))
			}
		}
	}
	// XenCenter: newest row time = lastupdate - lastupdate % (step*pdp),
	// rows oldest first. Check the 5 s archive against Rows().
	rows, _ := s.VM(vmB).Rows(5, Average, 0)
	db := d.RRA[0].Rows
	for k := range 3 {
		if got := db[len(db)-1-k].V[1]; got != FormatValue(rows[k].Values[1]) {
			t.Errorf("row %d: %s vs %v", k, got, rows[k].Values[1])
		}
	}
	if rows[0].Time.Unix() != d.LastUpdate-d.LastUpdate%5 {
		t.Errorf("newest row time %d", rows[0].Time.Unix())
	}

	b.Reset()
	if err := s.WriteHostRRD(&b, false); err != nil {
		t.Fatal(err)
	}
	d = dumpDoc{}
	if err := xml.Unmarshal(b.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	var cfs []string
	for _, a := range d.RRA {
		cfs = append(cfs, a.CF+"/"+strconv.FormatInt(a.PDPPerRow, 10)+"/"+a.XFF)
	}
	want := "AVERAGE/1/0.5 AVERAGE/12/1 MIN/12/1 MAX/12/1 AVERAGE/720/1 MIN/720/1 MAX/720/1 AVERAGE/17280/1 MIN/17280/1 MAX/17280/1"
	if strings.Join(cfs, " ") != want {
		t.Errorf("host archives %v", cfs)
	}
	if err := s.WriteVMRRD(&b, "nope", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown VM: %v", err)
	}
}

func TestDumpJSON(t *testing.T) {
	s := fixture(t)
	var b bytes.Buffer
	if err := s.WriteVMRRD(&b, vmB, true); err != nil {
		t.Fatal(err)
	}
	var d struct {
		Version    string `json:"version"`
		Step       string `json:"step"`
		LastUpdate string `json:"lastupdate"`
		DS         []map[string]string
		RRA        []struct {
			CF        string `json:"cf"`
			PDPPerRow string `json:"pdp_per_row"`
			Params    struct{ XFF string }
			CDPPrep   struct{ DS []map[string]string } `json:"cdp_prep"`
			Database  [][]string                       `json:"database"`
		} `json:"rra"`
	}
	if err := json.Unmarshal(b.Bytes(), &d); err != nil {
		t.Fatalf("%v\n%s", err, b.String()[:300])
	}
	if d.Version != "0003" || d.Step != "5" || d.LastUpdate != "1.728e+09" || len(d.DS) != 2 || d.DS[1]["type"] != "DERIVE" || d.DS[1]["max"] != "Infinity" {
		t.Errorf("header %+v", d)
	}
	if len(d.RRA) != 4 || d.RRA[1].PDPPerRow != "12" || d.RRA[0].Params.XFF != "0.5" || len(d.RRA[0].CDPPrep.DS) != 2 {
		t.Fatalf("rras %+v", d.RRA[0].Params)
	}
	db := d.RRA[0].Database
	if len(db) != 120 || strings.Join(db[119], ",") != "0.25,1000" {
		t.Errorf("database newest row %v", db[len(db)-1])
	}
}

// TestMemoryPerVM measures the heap retained per VM with 20 data sources
// (runtime.MemStats) against the 130 KB target.
func TestMemoryPerVM(t *testing.T) {
	for _, tc := range []struct {
		name   string
		minMax bool
		limit  float64
	}{
		{"AVERAGE only (xapi default)", false, 130_000},
		{"with MIN and MAX", true, 240_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const vms = 200
			perVM, retained := measureVMs(vms, tc.minMax)
			t.Logf("%.0f B heap per VM (RetainedBytes %d)", perVM, retained)
			if perVM > tc.limit {
				t.Errorf("%.0f B per VM > %.0f", perVM, tc.limit)
			}
		})
	}
}

func dsNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "vbd_xvd" + string(rune('a'+i%26)) + "_read_" + strconv.Itoa(i)
	}
	return out
}

// measureVMs fills a Store with VMs of 20 sources and returns the heap
// growth per VM and one VM's RetainedBytes.
func measureVMs(vms int, minMax bool) (float64, int) {
	names := dsNames(20)
	uuids := make([]string, vms)
	for i := range uuids {
		uuids[i] = strconv.Itoa(100000000 + i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewStore(StoreOptions{VMMinMax: minMax})
	vals := make(map[string]float64, len(names))
	for sec := range 70 {
		for i, u := range uuids {
			for j, n := range names {
				vals[n] = float64(i*j+sec) * 0.37
			}
			s.AddVM(u, at(sec), vals)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perVM := float64(after.HeapAlloc-before.HeapAlloc) / float64(vms)
	retained := s.VM(uuids[0]).RetainedBytes()
	runtime.KeepAlive(s)
	return perVM, retained
}

func TestEmptyRRDDump(t *testing.T) {
	r := mustNew(t, Options{})
	for _, js := range []bool{false, true} {
		var b bytes.Buffer
		if err := WriteRRD(&b, r, js); err != nil {
			t.Fatal(err)
		}
		if js {
			var v map[string]any
			if err := json.Unmarshal(b.Bytes(), &v); err != nil {
				t.Errorf("%v: %s", err, b.String())
			}
		} else {
			var d dumpDoc
			if err := xml.Unmarshal(b.Bytes(), &d); err != nil || len(d.RRA) != 4 || d.LastUpdate != 0 {
				t.Errorf("%v %+v", err, d)
			}
		}
	}
}
