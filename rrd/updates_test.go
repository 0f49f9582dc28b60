package rrd

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"math"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	vmA    = "aaaaaaaa-0000-4000-8000-000000000001"
	vmB    = "bbbbbbbb-0000-4000-8000-000000000002"
	hostID = "7f3c0000-0000-4000-8000-00000000000f"
)

// fixture: samples every second from t0 to t0+12.
func fixture(t testing.TB) *Store {
	t.Helper()
	s := NewStore(StoreOptions{Now: func() time.Time { return at(12) }})
	s.Host().Define(
		DataSource{Name: "cpu0", Min: 0, Max: 1},
		DataSource{Name: "memory_free_kib", Units: "KiB"},
	)
	s.VM(vmB).Define(
		DataSource{Name: "cpu0", Min: 0, Max: 1},
		DataSource{Name: "vif_0_rx", Type: Derive, Min: 0, Max: math.Inf(1)},
	)
	for i := 0; i <= 12; i++ {
		s.AddHost(at(i), map[string]float64{"cpu0": 0.1 + 0.01*float64(i), "memory_free_kib": 1e6 + 1000*float64(i)})
		s.AddVM(vmA, at(i), map[string]float64{"cpu0": 0.5})
		b := map[string]float64{"vif_0_rx": 1000 * float64(i)}
		if i > 3 {
			b["cpu0"] = 0.25
		}
		s.AddVM(vmB, at(i), b)
	}
	return s
}

func render(t testing.TB, s *Store, raw string) string {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseUpdatesQuery(v)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.WriteUpdates(&b, q, hostID); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const goldenXML = `<?xml version="1.0" encoding="UTF-8"?>
<xport><meta><start>1728000005</start><step>5</step><end>1728000010</end><rows>3</rows><columns>5</columns><legend>` +
	`<entry>AVERAGE:vm:aaaaaaaa-0000-4000-8000-000000000001:cpu0</entry>` +
	`<entry>AVERAGE:vm:bbbbbbbb-0000-4000-8000-000000000002:cpu0</entry>` +
	`<entry>AVERAGE:vm:bbbbbbbb-0000-4000-8000-000000000002:vif_0_rx</entry>` +
	`<entry>AVERAGE:host:7f3c0000-0000-4000-8000-00000000000f:cpu0</entry>` +
	`<entry>AVERAGE:host:7f3c0000-0000-4000-8000-00000000000f:memory_free_kib</entry>` +
	`</legend></meta><data>` +
	`<row><t>1728000010</t><v>0.5</v><v>0.25</v><v>1000</v><v>0.18</v><v>1.008e+06</v></row>` +
	`<row><t>1728000005</t><v>0.5</v><v>NaN</v><v>1000</v><v>0.13</v><v>1.003e+06</v></row>` +
	`<row><t>1728000000</t><v>NaN</v><v>NaN</v><v>NaN</v><v>NaN</v><v>NaN</v></row>` +
	`</data></xport>`

const goldenJSON = `{"meta":{"start":1728000005,"step":5,"end":1728000010,"rows":3,"columns":5,"legend":[` +
	`"AVERAGE:vm:aaaaaaaa-0000-4000-8000-000000000001:cpu0",` +
	`"AVERAGE:vm:bbbbbbbb-0000-4000-8000-000000000002:cpu0",` +
	`"AVERAGE:vm:bbbbbbbb-0000-4000-8000-000000000002:vif_0_rx",` +
	`"AVERAGE:host:7f3c0000-0000-4000-8000-00000000000f:cpu0",` +
	`"AVERAGE:host:7f3c0000-0000-4000-8000-00000000000f:memory_free_kib"]},"data":[` +
	`{"t":1728000010,"values":["0.5","0.25","1000","0.18","1.008e+06"]},` +
	`{"t":1728000005,"values":["0.5","NaN","1000","0.13","1.003e+06"]},` +
	`{"t":1728000000,"values":["NaN","NaN","NaN","NaN","NaN"]}]}`

func TestUpdatesGolden(t *testing.T) {
	s := fixture(t)
	for _, tc := range []struct {
		name, query, want string
	}{
		{"xml", "start=1728000000&cf=AVERAGE&interval=5&host=true", goldenXML},
		{"json", "start=1728000000&cf=AVERAGE&interval=5&host=true&json=true", goldenJSON},
		{"relative start", "start=-12&cf=AVERAGE&interval=5&host=true", goldenXML},
		{"no cf, no interval", "start=1728000000&host=true", goldenXML},
		{"vm filter", "start=1728000008&interval=5&vm_uuid=" + vmA,
			`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<xport><meta><start>1728000010</start><step>5</step><end>1728000010</end><rows>1</rows><columns>1</columns><legend>` +
				`<entry>AVERAGE:vm:aaaaaaaa-0000-4000-8000-000000000001:cpu0</entry></legend></meta><data>` +
				`<row><t>1728000010</t><v>0.5</v></row></data></xport>`},
		{"unknown vm", "start=1728000008&interval=5&vm_uuid=nope",
			`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<xport><meta><start>1728000010</start><step>5</step><end>1728000010</end><rows>0</rows><columns>0</columns><legend/></meta><data/></xport>`},
		{"one second", "start=1728000010&interval=1&vm_uuid=" + vmB + "&json",
			`{"meta":{"start":1728000011,"step":1,"end":1728000012,"rows":3,"columns":2,"legend":[` +
				`"AVERAGE:vm:bbbbbbbb-0000-4000-8000-000000000002:cpu0","AVERAGE:vm:bbbbbbbb-0000-4000-8000-000000000002:vif_0_rx"]},"data":[` +
				`{"t":1728000012,"values":["0.25","1000"]},{"t":1728000011,"values":["0.25","1000"]},{"t":1728000010,"values":["0.25","1000"]}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(t, s, tc.query); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestUpdatesHostMinMax: without cf, the host's MIN and MAX archives of
// the chosen step are listed too (VMs have AVERAGE only by default).
func TestUpdatesHostMinMax(t *testing.T) {
	s := NewStore(StoreOptions{})
	for i := 0; i <= 120; i++ {
		s.AddHost(at(i), map[string]float64{"load": float64(i % 7)})
		s.AddVM(vmA, at(i), map[string]float64{"cpu0": 0.5})
	}
	got := render(t, s, "start=1728000000&interval=60&host=true")
	for _, want := range []string{
		"<start>1728000060</start><step>60</step><end>1728000120</end><rows>3</rows><columns>4</columns>",
		"<entry>AVERAGE:vm:" + vmA + ":cpu0</entry><entry>AVERAGE:host:h:load</entry><entry>MIN:host:h:load</entry><entry>MAX:host:h:load</entry>",
		"<row><t>1728000120</t><v>0.5</v><v>3</v><v>0.0</v><v>6</v></row>",
		"<row><t>1728000060</t><v>0.5</v><v>2.9667</v><v>0.0</v><v>6</v></row>",
		"<row><t>1728000000</t><v>NaN</v><v>NaN</v><v>NaN</v><v>NaN</v></row></data></xport>",
	} {
		want = strings.ReplaceAll(want, ":h:", ":"+hostID+":")
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	got = render(t, s, "start=1728000000&interval=5&cf=MAX&host=true")
	if !strings.Contains(got, "<step>60</step>") || !strings.Contains(got, "<entry>MAX:host:"+hostID+":load</entry></legend>") {
		t.Errorf("cf=MAX at 5 s should fall back to the minute MAX archive:\n%s", got)
	}
}

// xport mirrors the XML layout for decoding in tests.
type xport struct {
	Meta struct {
		Start   int64    `xml:"start"`
		Step    int64    `xml:"step"`
		End     int64    `xml:"end"`
		Rows    int      `xml:"rows"`
		Columns int      `xml:"columns"`
		Legend  []string `xml:"legend>entry"`
	} `xml:"meta"`
	Rows []struct {
		T int64    `xml:"t"`
		V []string `xml:"v"`
	} `xml:"data>row"`
}

type jsonUpdates struct {
	Meta struct {
		Start, Step, End int64
		Rows, Columns    int
		Legend           []string
	}
	Data []struct {
		T      int64
		Values []string
	}
}

// TestUpdatesRoundTrip decodes both renderings with the standard library
// and checks they agree with each other and with the RRDs.
func TestUpdatesRoundTrip(t *testing.T) {
	s := fixture(t)
	var x xport
	if err := xml.Unmarshal([]byte(render(t, s, "start=1727999500&host=true&interval=5")), &x); err != nil {
		t.Fatal(err)
	}
	var j jsonUpdates
	if err := json.Unmarshal([]byte(render(t, s, "start=1727999500&host=true&interval=5&json=1")), &j); err != nil {
		t.Fatal(err)
	}
	if x.Meta.Rows != len(x.Rows) || x.Meta.Columns != len(x.Meta.Legend) || x.Meta.Rows != 103 {
		t.Errorf("xml meta %+v, %d rows", x.Meta, len(x.Rows))
	}
	if j.Meta.Start != x.Meta.Start || j.Meta.End != x.Meta.End || j.Meta.Step != 5 || len(j.Data) != len(x.Rows) {
		t.Errorf("json meta %+v", j.Meta)
	}
	for k := range x.Rows {
		if x.Rows[k].T != j.Data[k].T || x.Rows[k].T != x.Meta.End-int64(k)*5 {
			t.Fatalf("row %d time %d / %d", k, x.Rows[k].T, j.Data[k].T)
		}
		for c := range x.Rows[k].V {
			if x.Rows[k].V[c] != j.Data[k].Values[c] {
				t.Fatalf("row %d col %d: %q vs %q", k, c, x.Rows[k].V[c], j.Data[k].Values[c])
			}
			if _, err := strconv.ParseFloat(x.Rows[k].V[c], 64); err != nil && x.Rows[k].V[c] != "NaN" {
				t.Fatalf("unparsable value %q", x.Rows[k].V[c])
			}
		}
	}
	host, _ := s.Host().Rows(5, Average, 1)
	if got := x.Rows[0].V[3]; got != FormatValue(host[0].Values[0]) {
		t.Errorf("host cpu0 %q, RRD says %v", got, host[0].Values[0])
	}
}

// TestUpdatesStaleVM: a VM whose last sample is older than the host's
// gets NaN for the newer rows, and its own rows line up by time.
func TestUpdatesStaleVM(t *testing.T) {
	s := NewStore(StoreOptions{})
	for i := 0; i <= 20; i++ {
		s.AddHost(at(i), map[string]float64{"h": 1})
		if i <= 12 {
			s.AddVM(vmA, at(i), map[string]float64{"v": float64(i)})
		}
	}
	var x xport
	if err := xml.Unmarshal([]byte(render(t, s, "start=1728000005&host=true&interval=5")), &x); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range x.Rows {
		got = append(got, strconv.FormatInt(r.T-t0, 10)+"="+r.V[0])
	}
	if want := "20=NaN 15=NaN 10=8 5=3"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

func TestEmptyStore(t *testing.T) {
	s := NewStore(StoreOptions{Now: func() time.Time { return at(7) }})
	got := render(t, s, "start=1728000000&host=true&interval=5&json")
	want := `{"meta":{"start":1728000005,"step":5,"end":1728000005,"rows":0,"columns":0,"legend":[]},"data":[]}`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	var j jsonUpdates
	if err := json.Unmarshal([]byte(got), &j); err != nil {
		t.Error(err)
	}
}

func TestChooseArchive(t *testing.T) {
	last := float64(t0 + 1_000_000)
	for _, tc := range []struct {
		name     string
		minMax   bool
		cf       string
		interval int
		ago      float64
		wantStep int
	}{
		{"xapi default is 5 s", false, "", 0, 10, 5},
		{"1 s on request", false, "AVERAGE", 1, 10, 1},
		{"1 s within span", false, "AVERAGE", 1, 599, 1},
		{"1 s and 5 s too far back", false, "AVERAGE", 1, 650, 60},
		{"interval 3", false, "", 3, 10, 5},
		{"XenCenter 5 s", false, "AVERAGE", 5, 10, 5},
		{"XO 5 s", false, "AVERAGE", 5, 595, 5},
		{"7 rounds down to 5", false, "AVERAGE", 7, 10, 5},
		{"5 s span exceeded", false, "AVERAGE", 5, 600, 60},
		{"minute", false, "AVERAGE", 60, 7140, 60},
		{"59 rounds down to 55", false, "AVERAGE", 59, 10, 60},
		{"hour", false, "AVERAGE", 3600, 3600, 3600},
		{"day", false, "AVERAGE", 86400, 10, 86400},
		{"older than everything", false, "AVERAGE", 5, 1e9, 86400},
		{"MIN at 5 s", true, "MIN", 5, 10, 60},
		{"MIN without min archives", false, "MIN", 5, 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf, _ := ParseCF(tc.cf)
			step, _, ok := chooseArchive(DefaultLayout(tc.minMax), cf, tc.cf == "", tc.interval, last-tc.ago, last)
			if step != tc.wantStep || ok != (tc.wantStep != 0) {
				t.Errorf("step %d ok %v, want %d", step, ok, tc.wantStep)
			}
		})
	}
}

func TestParseUpdatesQuery(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		want    UpdatesQuery
		wantErr string
	}{
		{raw: "start=1700000000&cf=AVERAGE&interval=5&host=true",
			want: UpdatesQuery{Start: time.Unix(1700000000, 0), CF: "AVERAGE", Interval: 5, Host: true}},
		{raw: "cf=AVERAGE&host=true&interval=60&json=true&start=1700000000",
			want: UpdatesQuery{Start: time.Unix(1700000000, 0), CF: "AVERAGE", Interval: 60, Host: true, JSON: true}},
		{raw: "start=-600&json=", want: UpdatesQuery{RelativeStart: -600, JSON: true}},
		{raw: "start=0&json=false", want: UpdatesQuery{Start: time.Unix(0, 0), JSON: true}},
		{raw: "start=5&host&vm_uuid=a&vm_uuid=b&sr_uuid=c",
			want: UpdatesQuery{Start: time.Unix(5, 0), Host: true, VMUUIDs: []string{"a", "b"}, SRUUIDs: []string{"c"}}},
		{raw: "start=5&host=false&cf=MIN", want: UpdatesQuery{Start: time.Unix(5, 0), CF: "MIN"}},
		{raw: "", wantErr: "missing start"},
		{raw: "start=", wantErr: "missing start"},
		{raw: "start=abc", wantErr: "not an integer"},
		{raw: "start=1.5", wantErr: "not an integer"},
		{raw: "start=1&interval=-5", wantErr: "interval"},
		{raw: "start=1&interval=x", wantErr: "interval"},
		{raw: "start=1&cf=average", wantErr: "cf"},
		{raw: "start=1&cf=LAST", wantErr: "cf"},
		{raw: "start=1&cf=", wantErr: "cf"},
		{raw: "start=1&host=maybe", wantErr: "host"},
		{raw: "start=1&vm_uuid=", wantErr: "vm_uuid"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.raw)
			got, err := ParseUpdatesQuery(v)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Start.Equal(tc.want.Start) || got.RelativeStart != tc.want.RelativeStart || got.Interval != tc.want.Interval ||
				got.CF != tc.want.CF || got.Host != tc.want.Host || got.JSON != tc.want.JSON ||
				strings.Join(got.VMUUIDs, ",") != strings.Join(tc.want.VMUUIDs, ",") ||
				(got.VMUUIDs == nil) != (tc.want.VMUUIDs == nil) ||
				strings.Join(got.SRUUIDs, ",") != strings.Join(tc.want.SRUUIDs, ",") {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestWriteUpdatesErrors(t *testing.T) {
	s := fixture(t)
	for _, q := range []UpdatesQuery{{CF: "avg"}, {Interval: -1}} {
		if err := s.WriteUpdates(&bytes.Buffer{}, q, hostID); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%+v: err = %v", q, err)
		}
	}
}

func TestNegotiateJSON(t *testing.T) {
	for _, tc := range []struct {
		accept string
		query  string
		want   bool
	}{
		{"", "", false},          // XenCenter
		{"", "json=true", true},  // XO
		{"", "json=false", true}, // presence decides
		{"*/*", "", true},        // wildcard counts for JSON
		{"application/json", "", true},
		{"text/xml", "json=true", false},
		{"text/xml;q=0.5, application/json;q=0.9", "", true},
		{"application/json;q=0.1, text/xml", "", false},
		{"text/html", "json", true},
		{"text/html", "", false},
		{"garbage;;", "", false},
	} {
		v, _ := url.ParseQuery(tc.query)
		if got := NegotiateJSON(tc.accept, v); got != tc.want {
			t.Errorf("NegotiateJSON(%q, %q) = %v", tc.accept, tc.query, got)
		}
	}
}
