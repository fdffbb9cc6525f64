package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// Limits of the control socket: a request is one line of at most
// MaxRequest bytes that must arrive within RequestTimeout of the connect;
// at most MaxConns connections are served at once (more wait in the
// kernel's backlog, with no goroutine of ours), and an answer that the
// client does not read within RequestTimeout is dropped.
const (
	MaxRequest     = 64 << 10
	MaxConns       = 64
	RequestTimeout = 5 * time.Second
)

// ReadRequest reads and decodes one request: a JSON object on one line
// (the connection's end may stand for the newline). It never reads more
// than MaxRequest+1 bytes. Every error wraps ErrBadRequest and starts
// "bad request: ": not one JSON object, an unknown op (ErrUnknownOp), an
// unknown field, or a field the op does not take (checkFields).
func ReadRequest(r io.Reader) (Request, error) {
	var req Request
	line, err := bufio.NewReaderSize(io.LimitReader(r, MaxRequest+1), 4096).ReadBytes('\n')
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && len(line) > MaxRequest:
		return req, ErrRequestTooLong
	case errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) == 0:
		return req, fmt.Errorf("%w: empty", ErrBadRequest)
	case errors.Is(err, io.EOF):
	default:
		return req, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	// First the keys, to name an unknown one with a hint; then the values.
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&fields); err != nil {
		return req, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if dec.More() {
		return req, fmt.Errorf("%w: more than one JSON value", ErrBadRequest)
	}
	if fields == nil {
		return req, fmt.Errorf("%w: not a JSON object", ErrBadRequest)
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err := checkFields(req.Op, fields); err != nil {
		return Request{}, err
	}
	if req.Op == OpJailWatch && req.PID <= 0 {
		return Request{}, fmt.Errorf("%w: %s needs a pid above 0", ErrBadRequest, req.Op)
	}
	return req, nil
}

// field is one field of Request, as a bit of a set.
type field uint

const (
	fDir field = 1 << iota
	fJail
	fArgs
	fAllowOther
	fPerNetns
	fCommand
	fDying
	fPID
)

// fieldNames are the JSON names of Request's fields besides "op".
var fieldNames = map[string]field{
	"dir": fDir, "jail": fJail, "args": fArgs, "allow_other": fAllowOther,
	"per_netns": fPerNetns, "command": fCommand, "dying": fDying, "pid": fPID,
}

// opFields says which fields each op takes; an op missing here is
// unknown to this daemon.
var opFields = map[Op]field{
	OpPing:           0,
	OpMount:          fDir | fJail | fAllowOther | fPerNetns,
	OpPerNetnsEnsure: fDir,
	OpUmount:         fDir,
	OpWait:           fDir,
	OpStatus:         0,
	OpIfconfig:       fJail | fArgs,
	OpSysctl:         fArgs,
	OpStacks:         0,
	OpJailCreate:     fArgs | fCommand,
	OpJailWatch:      fJail | fPID,
	OpJailRemove:     fJail,
	OpJls:            fDying,
	OpJailExec:       fJail,
	OpShutdown:       0,
	OpRestart:        0,
}

// versionHint ends the refusal of what a client of another version may
// send.
const versionHint = "(a tundevfs client newer than this daemon? restart the daemon after an upgrade)"

// checkFields refuses an unknown op, an unknown field and a field the op
// does not take (present at all, even with a zero value).
func checkFields(op Op, fields map[string]json.RawMessage) error {
	if op == "" {
		return fmt.Errorf("%w: no op", ErrBadRequest)
	}
	takes, ok := opFields[op]
	if !ok {
		return fmt.Errorf("%w %q %s", ErrUnknownOp, string(op), versionHint)
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names) // the same request, the same message
	for _, name := range names {
		if name == "op" {
			continue
		}
		f, known := fieldNames[name]
		if !known {
			return fmt.Errorf("%w: unknown field %q %s", ErrBadRequest, name, versionHint)
		}
		if takes&f == 0 {
			return fmt.Errorf("%w: %s takes no %q", ErrBadRequest, op, name)
		}
	}
	return nil
}
