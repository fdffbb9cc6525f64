package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/internal/testenv"
	"github.com/tundevfs/tundevfs/jails"
)

// sampleFields are a non-zero value for each field of Request but op.
var sampleFields = map[field]func(*Request){
	fDir:        func(r *Request) { r.Dir = "/mnt/dev" },
	fJail:       func(r *Request) { r.Jail = "j1" },
	fArgs:       func(r *Request) { r.Args = []string{"a", "b=c"} },
	fAllowOther: func(r *Request) { r.AllowOther = true },
	fPerNetns:   func(r *Request) { r.PerNetns = true },
	fCommand:    func(r *Request) { r.Command = true },
	fDying:      func(r *Request) { r.Dying = true },
	fPID:        func(r *Request) { r.PID = 42 },
}

// decode runs ReadRequest on one line.
func decode(line string) (Request, error) {
	return ReadRequest(strings.NewReader(line + "\n"))
}

// TestProtocolTables: the Op constants, the ops of opFields and the cases
// of Daemon.handle are the same set, and fieldNames names every field
// of Request but op by its JSON name.
func TestProtocolTables(t *testing.T) {
	consts := map[string]bool{}
	for name := range opConsts(t) {
		consts[name] = true
	}
	fields := map[string]bool{}
	for op := range opFields {
		fields[string(op)] = true
	}
	cases := handleCases(t)
	if !reflect.DeepEqual(consts, fields) || !reflect.DeepEqual(consts, cases) {
		t.Errorf("ops differ:\n  constants %v\n  opFields  %v\n  handle    %v", keys(consts), keys(fields), keys(cases))
	}
	rt := reflect.TypeOf(Request{})
	for i := 0; i < rt.NumField(); i++ {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name == "op" {
			continue
		}
		f, ok := fieldNames[name]
		if !ok {
			t.Errorf("Request.%s (%q) is not in fieldNames", rt.Field(i).Name, name)
		}
		if sampleFields[f] == nil {
			t.Errorf("field %q has no sample", name)
		}
	}
	if len(fieldNames) != rt.NumField()-1 {
		t.Errorf("fieldNames has %d entries for %d fields", len(fieldNames), rt.NumField()-1)
	}
}

// TestDecodeEveryOp: each op decodes with all of its fields set, and
// survives a round trip through the JSON the client sends.
func TestDecodeEveryOp(t *testing.T) {
	for op, takes := range opFields {
		t.Run(string(op), func(t *testing.T) {
			req := Request{Op: op}
			for f, set := range sampleFields {
				if takes&f != 0 {
					set(&req)
				}
			}
			b, err := json.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decode(string(b))
			if err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if !reflect.DeepEqual(got, req) {
				t.Fatalf("%s decoded as %+v, want %+v", b, got, req)
			}
			// The bare op: every field is optional but jail-watch's pid.
			_, err = decode(fmt.Sprintf(`{"op":%q}`, op))
			if (err != nil) != (op == OpJailWatch) {
				t.Fatalf("bare %s: %v", op, err)
			}
		})
	}
}

// TestDecodeRefuses: what ReadRequest refuses, and that it says why in a
// message that starts "bad request: " and wraps ErrBadRequest.
func TestDecodeRefuses(t *testing.T) {
	type refusal struct {
		name, line, want string
		also             error
	}
	tests := []refusal{
		{"unknown op", `{"op":"frob"}`, `unknown op "frob" (a tundevfs client newer than this daemon?`, ErrUnknownOp},
		{"no op", `{"dir":"/x"}`, "no op", nil},
		{"empty op", `{"op":""}`, "no op", nil},
		{"unknown field", `{"op":"ping","bogus":1}`, `unknown field "bogus" (a tundevfs client newer`, nil},
		{"field in another case", `{"op":"ping","Dir":"/x"}`, `unknown field "Dir"`, nil},
		{"wrong type", `{"op":"jail-watch","pid":"42"}`, "cannot unmarshal string", nil},
		{"wrong op type", `{"op":7}`, "cannot unmarshal number", nil},
		{"pid zero", `{"op":"jail-watch","jail":"x","pid":0}`, "jail-watch needs a pid above 0", nil},
		{"pid negative", `{"op":"jail-watch","pid":-1}`, "jail-watch needs a pid above 0", nil},
		{"two values", `{"op":"status"}{"op":"ping"}`, "more than one JSON value", nil},
		{"array", `[1,2,3]`, "cannot unmarshal array", nil},
		{"null", `null`, "not a JSON object", nil},
		{"not JSON", `{"op":"ping"`, "unexpected EOF", nil},
		{"empty line", ``, "EOF", nil},
		{"too long", strings.Repeat("a", MaxRequest+10), "request over 64 KiB", ErrRequestTooLong},
		// What clients before typed ops sent for these.
		{"old jls -d", `{"op":"jls","args":["-d"]}`, `jls takes no "args"`, nil},
		{"old command=", `{"op":"jail-create","args":["name=x"],"dir":"command"}`, `jail-create takes no "dir"`, nil},
		{"old jail-watch", `{"op":"jail-watch","jail":"x","args":["42"]}`, `jail-watch takes no "args"`, nil},
	}
	if _, err := ReadRequest(strings.NewReader("")); !errors.Is(err, ErrBadRequest) || err.Error() != "bad request: empty" {
		t.Errorf("nothing at all: %v", err)
	}
	// Every field that an op does not take, even with a zero value.
	for op, takes := range opFields {
		for name, f := range fieldNames {
			if takes&f == 0 {
				tests = append(tests, refusal{string(op) + " " + name, fmt.Sprintf(`{"op":%q,%q:null}`, op, name), fmt.Sprintf("%s takes no %q", op, name), nil})
			}
		}
	}
	for _, tc := range tests {
		req, err := decode(tc.line)
		if err == nil {
			t.Errorf("%s: %s accepted as %+v", tc.name, tc.line, req)
			continue
		}
		if !errors.Is(err, ErrBadRequest) || !strings.HasPrefix(err.Error(), "bad request: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a bad request saying %q", tc.name, err, tc.want)
		}
		if tc.also != nil && !errors.Is(err, tc.also) {
			t.Errorf("%s: %v does not wrap %v", tc.name, err, tc.also)
		}
		if !reflect.DeepEqual(req, Request{}) {
			t.Errorf("%s: refused, but returned %+v", tc.name, req)
		}
		if c := failure(err).Code; c == "" || sentinelOf(c) == nil || !errors.Is(err, sentinelOf(c)) {
			t.Errorf("%s: answered with code %q", tc.name, c)
		}
	}
}

// TestErrorCodeTable: every exported sentinel that a handler can return
// (those of daemon, jails, driver, clonehandler and ioctls) has a row in
// errorCodes; no code or sentinel has two; and each row's sentinel makes
// the round trip daemon -> JSON -> client with its message unchanged and
// errors.Is finding it (driver's TestErrnoTable does the same for errnos).
func TestErrorCodeTable(t *testing.T) {
	clientOnly := map[string]bool{"ErrNoDaemon": true, "ErrOldDaemon": true}
	rows := tableRows(t, "errcodes.go", "errorCodes")
	for _, pkg := range []struct{ dir, prefix string }{
		{".", ""}, {"../jails", "jails."}, {"../driver", "driver."}, {"../clonehandler", "clonehandler."}, {"../ioctls", "ioctls."},
	} {
		for _, name := range testenv.Sentinels(t, pkg.dir) {
			if pkg.prefix == "" && clientOnly[name] {
				if rows[name] {
					t.Errorf("%s is the client's own and has a code", name)
				}
				continue
			}
			if !rows[pkg.prefix+name] {
				t.Errorf("%s%s has no code in errorCodes: a client could not errors.Is it", pkg.prefix, name)
			}
		}
	}
	codes, errs := map[Code]bool{}, map[error]bool{}
	for _, r := range errorCodes {
		if r.Code == "" || codes[r.Code] || errs[r.Err] {
			t.Errorf("row %q %v: empty or repeated", r.Code, r.Err)
		}
		codes[r.Code], errs[r.Err] = true, true
		sent := fmt.Errorf("op x: %w", fmt.Errorf("inner: %w", r.Err))
		got := roundTrip(t, failure(sent))
		if got.Error() != sent.Error() {
			t.Errorf("%q: message %q, want %q", r.Code, got.Error(), sent.Error())
		}
		if !errors.Is(got, r.Err) {
			t.Errorf("%q: errors.Is(%v, %v) is false on the client", r.Code, got, r.Err)
		}
		var re *RemoteError
		if !errors.As(got, &re) || re.Code != r.Code {
			t.Errorf("%q: the daemon sends code %q (a row before it matches first?)", r.Code, codeOf(sent))
		}
	}
	// Two sentinels at once: errors.Is finds both through the first's
	// code when one wraps the other (the fast path is busy).
	got := roundTrip(t, failure(fmt.Errorf("open tun0: %w", driver.ErrFastPath)))
	if !errors.Is(got, driver.ErrFastPath) || !errors.Is(got, driver.ErrBusy) {
		t.Errorf("fast path error lost a sentinel: %v", got)
	}
	// No sentinel: the message alone, no code.
	plain := failure(errors.New("ifconfig: usage: ..."))
	if plain.Code != "" {
		t.Errorf("plain error got code %q", plain.Code)
	}
	if got := roundTrip(t, plain); got.Error() != "ifconfig: usage: ..." || errors.Unwrap(got) != nil {
		t.Errorf("plain error came back as %v (%v)", got, errors.Unwrap(got))
	}
	// A code this client does not know (a newer daemon's): the message.
	got = roundTrip(t, Response{Error: "something new", Code: "from-the-future"})
	if got.Error() != "something new" || errors.Unwrap(got) != nil {
		t.Errorf("unknown code came back as %v (%v)", got, errors.Unwrap(got))
	}
}

// roundTrip sends a failed answer through JSON to the client's decoder.
func roundTrip(t *testing.T, resp Response) error {
	t.Helper()
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var back Response
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return remoteError(back, "/sock")
}

// fakeDaemon answers each connection on a socket in a temporary directory
// with answer(request line).
func fakeDaemon(t *testing.T, answer func(line []byte) []byte) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadBytes('\n')
			if out := answer(line); out != nil {
				c.Write(append(out, '\n'))
			}
			c.Close()
		}
	}()
	return sock
}

// TestCallErrors: through a real socket, a daemon's failure reaches the
// client as its sentinel with its message; an old daemon's refusal of a
// new field says so; no daemon is ErrNoDaemon.
func TestCallErrors(t *testing.T) {
	sock := fakeDaemon(t, func(line []byte) []byte {
		req, err := ReadRequest(strings.NewReader(string(line)))
		var resp Response
		switch {
		case err != nil:
			resp = failure(err)
		case req.Op == OpJailRemove:
			resp = failure(fmt.Errorf("remove jail %s: %w", req.Jail, jails.ErrNotFound))
		case req.Op == OpIfconfig:
			resp = failure(fmt.Errorf("ifconfig: destroy %s: %w", req.Args[0], driver.ErrBusy))
		default:
			resp = Response{OK: true, Data: json.RawMessage(`"pong"`)}
		}
		b, _ := json.Marshal(resp)
		return b
	})
	_, err := Call(sock, Request{Op: OpJailRemove, Jail: "web"})
	if !errors.Is(err, jails.ErrNotFound) || err.Error() != "remove jail web: no such jail" {
		t.Errorf("jail-remove: %v", err)
	}
	_, err = Call(sock, Request{Op: OpIfconfig, Args: []string{"tun0", "destroy"}})
	if !errors.Is(err, driver.ErrBusy) || err.Error() != "ifconfig: destroy tun0: device busy" {
		t.Errorf("ifconfig: %v", err)
	}
	_, err = Call(sock, Request{Op: "frob"})
	if !errors.Is(err, ErrUnknownOp) || !errors.Is(err, ErrBadRequest) {
		t.Errorf("unknown op: %v", err)
	}
	var s string
	if err := CallInto(sock, Request{Op: OpPing}, &s); err != nil || s != "pong" {
		t.Errorf("ping: %q %v", s, err)
	}

	// A daemon from before typed ops and codes refuses a field it does
	// not know, as json.Decoder.DisallowUnknownFields words it.
	old := fakeDaemon(t, func(line []byte) []byte {
		return []byte(`{"ok":false,"error":"bad request: json: unknown field \"dying\""}`)
	})
	_, err = Call(old, Request{Op: OpJls, Dying: true})
	if !errors.Is(err, ErrOldDaemon) || !strings.Contains(err.Error(), `unknown field "dying"`) || !strings.Contains(err.Error(), "restart the daemon at "+old) {
		t.Errorf("old daemon: %v", err)
	}
	// Its other failures keep their message, with no sentinel.
	old2 := fakeDaemon(t, func(line []byte) []byte {
		return []byte(`{"ok":false,"error":"remove jail web: no such jail"}`)
	})
	if _, err = Call(old2, Request{Op: OpJailRemove, Jail: "web"}); err == nil || err.Error() != "remove jail web: no such jail" || errors.Is(err, ErrOldDaemon) {
		t.Errorf("old daemon's failure: %v", err)
	}

	if _, err := Call(filepath.Join(t.TempDir(), "none.sock"), Request{Op: OpPing}); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("no daemon: %v", err)
	}
}

// TestCallContext: a daemon that never answers holds CallContext only
// until its context ends.
func TestCallContext(t *testing.T) {
	release := make(chan struct{})
	sock := fakeDaemon(t, func([]byte) []byte { <-release; return nil })
	t.Cleanup(func() { close(release) }) // before fakeDaemon's (LIFO)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := CallContext(ctx, sock, Request{Op: OpPing}); errc <- err }()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CallContext past its deadline: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("CallContext hangs past its deadline")
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { _, err := CallContext(ctx, sock, Request{Op: OpPing}); errc <- err }()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("CallContext cancelled: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("CallContext hangs after its cancellation")
	}
}

// tableRows lists the sentinels named in the rows of the composite
// literal assigned to table in file, as "Name" or "pkg.Name".
func tableRows(t *testing.T, file, table string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != table {
			return true
		}
		for _, elt := range vs.Values[0].(*ast.CompositeLit).Elts {
			switch e := elt.(*ast.CompositeLit).Elts[1].(type) {
			case *ast.Ident:
				rows[e.Name] = true
			case *ast.SelectorExpr:
				rows[e.X.(*ast.Ident).Name+"."+e.Sel.Name] = true
			}
		}
		return false
	})
	if len(rows) == 0 {
		t.Fatalf("%s: no rows in %s", file, table)
	}
	return rows
}

// opConsts maps the names of protocol.go's Op constants to their names on
// the wire ("ping").
func opConsts(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "protocol.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Op" {
				continue
			}
			lit := vs.Values[0].(*ast.BasicLit)
			out[strings.Trim(lit.Value, `"`)] = vs.Names[0].Name
		}
	}
	return out
}

// handleCases lists the wire names of the ops Daemon.handle has a case for.
func handleCases(t *testing.T) map[string]bool {
	t.Helper()
	byName := map[string]string{}
	for wire, name := range opConsts(t) {
		byName[name] = wire
	}
	f, err := parser.ParseFile(token.NewFileSet(), "daemon.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Name.Name != "handle" {
			continue
		}
		ast.Inspect(fd, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if id, ok := e.(*ast.Ident); ok {
						out[byName[id.Name]] = true
					}
				}
			}
			return true
		})
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
