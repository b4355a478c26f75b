// Command mesosexec is a custom executor written only against the Mesos
// v1 executor HTTP API: it imports nothing from corral, so it runs
// unchanged under an Apache Mesos agent or a corral agent. It runs each
// task's data as a shell command (a task without data sleeps 100 ms),
// reports TASK_RUNNING then TASK_FINISHED or TASK_FAILED, answers a
// framework message "ping:<x>" with "pong:<x>", and exits on SHUTDOWN.
//
// The agent starts it with MESOS_AGENT_ENDPOINT, MESOS_FRAMEWORK_ID and
// MESOS_EXECUTOR_ID set; -encoding picks JSON or protobuf.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func main() {
	encoding := flag.String("encoding", "json", "json or protobuf")
	flag.Parse()
	e := &executor{
		url:         "http://" + os.Getenv("MESOS_AGENT_ENDPOINT") + "/api/v1/executor",
		frameworkID: os.Getenv("MESOS_FRAMEWORK_ID"),
		executorID:  os.Getenv("MESOS_EXECUTOR_ID"),
		codec:       jsonCodec{},
	}
	if *encoding == "protobuf" {
		e.codec = protoCodec{}
	}
	if e.frameworkID == "" || e.executorID == "" || os.Getenv("MESOS_AGENT_ENDPOINT") == "" {
		fmt.Fprintln(os.Stderr, "mesosexec: MESOS_AGENT_ENDPOINT, MESOS_FRAMEWORK_ID and MESOS_EXECUTOR_ID must be set (start me from an agent)")
		os.Exit(2)
	}
	if err := e.run(); err != nil {
		fmt.Fprintln(os.Stderr, "mesosexec:", err)
		os.Exit(1)
	}
}

// What the executor sends and reads.
type call struct {
	typ    string // SUBSCRIBE, UPDATE, MESSAGE
	update *status
	data   []byte
	// SUBSCRIBE after a reconnect: what was not acknowledged.
	unackedTasks   []string
	unackedUpdates []*status
}

type status struct {
	taskID, state, message string
	uuid                   []byte
}

type event struct {
	typ          string
	taskID       string // LAUNCH, KILL, ACKNOWLEDGED
	taskData     []byte // LAUNCH
	data         []byte // MESSAGE
	uuid         []byte // ACKNOWLEDGED
	errorMessage string
}

type codec interface {
	contentType() string
	encode(frameworkID, executorID string, c call) []byte
	decode([]byte) (event, error)
}

type executor struct {
	url, frameworkID, executorID string
	codec                        codec

	mu      sync.Mutex
	unacked map[string]*status // by uuid
	tasks   map[string]bool    // launched, no update acknowledged yet
	wg      sync.WaitGroup
}

// run subscribes and handles events; after a lost connection (an agent
// restart) it re-subscribes with what is unacknowledged, as a
// checkpointing Mesos executor does, until MESOS_RECOVERY_TIMEOUT.
func (e *executor) run() error {
	e.unacked, e.tasks = map[string]*status{}, map[string]bool{}
	recovery := 15 * time.Minute
	var lostSince time.Time
	for {
		done, err := e.session()
		if done {
			e.wg.Wait()
			return nil
		}
		if lostSince.IsZero() {
			lostSince = time.Now()
		}
		if time.Since(lostSince) > recovery {
			return fmt.Errorf("agent unreachable: %w", err)
		}
		fmt.Fprintln(os.Stderr, "mesosexec: re-subscribing:", err)
		time.Sleep(500 * time.Millisecond)
	}
}

func (e *executor) session() (bool, error) {
	c := call{typ: "SUBSCRIBE"}
	e.mu.Lock()
	for id := range e.tasks {
		c.unackedTasks = append(c.unackedTasks, id)
	}
	for _, u := range e.unacked {
		c.unackedUpdates = append(c.unackedUpdates, u)
	}
	e.mu.Unlock()
	req, err := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(e.codec.encode(e.frameworkID, e.executorID, c)))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", e.codec.contentType())
	req.Header.Set("Accept", e.codec.contentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return false, fmt.Errorf("subscribe: %s: %s", resp.Status, b)
	}
	r := bufio.NewReader(resp.Body)
	for {
		rec, err := readRecord(r)
		if err != nil {
			return false, err
		}
		ev, err := e.codec.decode(rec)
		if err != nil {
			return false, err
		}
		switch ev.typ {
		case "LAUNCH":
			e.mu.Lock()
			e.tasks[ev.taskID] = true
			e.mu.Unlock()
			e.wg.Add(1)
			go e.runTask(ev.taskID, string(ev.taskData))
		case "ACKNOWLEDGED":
			e.mu.Lock()
			if u := e.unacked[string(ev.uuid)]; u != nil {
				delete(e.tasks, u.taskID)
			}
			delete(e.unacked, string(ev.uuid))
			e.mu.Unlock()
		case "KILL":
			// Tasks are short; it ends with its own terminal update.
		case "MESSAGE":
			reply := ev.data
			if x, ok := strings.CutPrefix(string(ev.data), "ping:"); ok {
				reply = []byte("pong:" + x)
			}
			if err := e.send(call{typ: "MESSAGE", data: reply}); err != nil {
				fmt.Fprintln(os.Stderr, "mesosexec: message:", err)
			}
		case "SHUTDOWN":
			return true, nil
		case "ERROR":
			fmt.Fprintln(os.Stderr, "mesosexec: agent error:", ev.errorMessage)
		}
	}
}

func (e *executor) runTask(id, command string) {
	defer e.wg.Done()
	e.update(id, "TASK_RUNNING", "")
	if command == "" {
		time.Sleep(100 * time.Millisecond)
		e.update(id, "TASK_FINISHED", "slept")
		return
	}
	out, err := exec.Command("/bin/sh", "-c", command).CombinedOutput()
	if err != nil {
		e.update(id, "TASK_FAILED", fmt.Sprintf("%v: %s", err, out))
		return
	}
	e.update(id, "TASK_FINISHED", strings.TrimSpace(string(out)))
}

// update sends a status; it stays unacknowledged (and is resent on the
// next SUBSCRIBE) until the agent's ACKNOWLEDGED.
func (e *executor) update(taskID, state, message string) {
	u := &status{taskID: taskID, state: state, message: message, uuid: make([]byte, 16)}
	_, _ = rand.Read(u.uuid)
	u.uuid[6] = u.uuid[6]&0x0f | 0x40
	u.uuid[8] = u.uuid[8]&0x3f | 0x80
	e.mu.Lock()
	e.unacked[string(u.uuid)] = u
	e.mu.Unlock()
	if err := e.send(call{typ: "UPDATE", update: u}); err != nil {
		fmt.Fprintln(os.Stderr, "mesosexec: update (resent on re-subscribe):", err)
	}
}

func (e *executor) send(c call) error {
	req, err := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(e.codec.encode(e.frameworkID, e.executorID, c)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", e.codec.contentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s: %s", c.typ, resp.Status, b)
	}
	return nil
}

// readRecord reads one RecordIO record: "<length>\n<bytes>".
func readRecord(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("bad record length %q", line)
	}
	buf := make([]byte, n)
	_, err = io.ReadFull(r, buf)
	return buf, err
}

// ---- JSON

type jsonCodec struct{}

func (jsonCodec) contentType() string { return "application/json" }

type value struct {
	Value string `json:"value"`
}

func jsonStatus(executorID string, u *status) map[string]any {
	s := map[string]any{"task_id": value{u.taskID}, "state": u.state, "source": "SOURCE_EXECUTOR",
		"uuid": u.uuid, "executor_id": value{executorID}, "timestamp": float64(time.Now().UnixNano()) / 1e9}
	if u.message != "" {
		s["message"] = u.message
	}
	return s
}

func (jsonCodec) encode(frameworkID, executorID string, c call) []byte {
	m := map[string]any{"type": c.typ, "framework_id": value{frameworkID}, "executor_id": value{executorID}}
	switch c.typ {
	case "SUBSCRIBE":
		sub := map[string]any{}
		var tasks, updates []any
		for _, id := range c.unackedTasks {
			tasks = append(tasks, map[string]any{"name": id, "task_id": value{id}, "agent_id": value{""}})
		}
		for _, u := range c.unackedUpdates {
			updates = append(updates, map[string]any{"status": jsonStatus(executorID, u)})
		}
		if len(tasks) > 0 {
			sub["unacknowledged_tasks"] = tasks
		}
		if len(updates) > 0 {
			sub["unacknowledged_updates"] = updates
		}
		m["subscribe"] = sub
	case "UPDATE":
		m["update"] = map[string]any{"status": jsonStatus(executorID, c.update)}
	case "MESSAGE":
		m["message"] = map[string]any{"data": c.data}
	}
	b, _ := json.Marshal(m) // []byte marshals as standard Base64, as Mesos wants
	return b
}

func (jsonCodec) decode(b []byte) (event, error) {
	var raw struct {
		Type   string `json:"type"`
		Launch struct {
			Task struct {
				TaskID value  `json:"task_id"`
				Data   []byte `json:"data"`
			} `json:"task"`
		} `json:"launch"`
		Kill struct {
			TaskID value `json:"task_id"`
		} `json:"kill"`
		Acknowledged struct {
			TaskID value  `json:"task_id"`
			UUID   []byte `json:"uuid"`
		} `json:"acknowledged"`
		Message struct {
			Data []byte `json:"data"`
		} `json:"message"`
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return event{}, fmt.Errorf("event %q: %w", b, err)
	}
	ev := event{typ: raw.Type, data: raw.Message.Data, errorMessage: raw.Error.Message}
	switch raw.Type {
	case "LAUNCH":
		ev.taskID, ev.taskData = raw.Launch.Task.TaskID.Value, raw.Launch.Task.Data
	case "KILL":
		ev.taskID = raw.Kill.TaskID.Value
	case "ACKNOWLEDGED":
		ev.taskID, ev.uuid = raw.Acknowledged.TaskID.Value, raw.Acknowledged.UUID
	}
	return ev, nil
}

// ---- protobuf (field numbers from mesos/v1/executor/executor.proto and mesos/v1/mesos.proto)

type protoCodec struct{}

func (protoCodec) contentType() string { return "application/x-protobuf" }

var callTypes = map[string]uint64{"SUBSCRIBE": 1, "UPDATE": 2, "MESSAGE": 3}

var stateNumbers = map[string]uint64{"TASK_STARTING": 0, "TASK_RUNNING": 1, "TASK_FINISHED": 2, "TASK_FAILED": 3, "TASK_KILLED": 4}

var eventTypes = map[uint64]string{1: "SUBSCRIBED", 2: "LAUNCH", 8: "LAUNCH_GROUP", 3: "KILL", 4: "ACKNOWLEDGED", 5: "MESSAGE",
	6: "ERROR", 7: "SHUTDOWN", 9: "HEARTBEAT"}

func msg(b []byte, num protowire.Number, inner []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

func str(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func varint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func idMsg(v string) []byte { return str(nil, 1, v) }

func pbStatus(executorID string, u *status) []byte {
	s := msg(nil, 1, idMsg(u.taskID))
	s = varint(s, 2, stateNumbers[u.state])
	if u.message != "" {
		s = str(s, 4, u.message)
	}
	s = msg(s, 7, idMsg(executorID))
	s = varint(s, 9, 2) // SOURCE_EXECUTOR
	s = protowire.AppendTag(s, 11, protowire.BytesType)
	return protowire.AppendBytes(s, u.uuid)
}

func (protoCodec) encode(frameworkID, executorID string, c call) []byte {
	b := msg(nil, 1, idMsg(executorID))
	b = msg(b, 2, idMsg(frameworkID))
	b = varint(b, 3, callTypes[c.typ])
	switch c.typ {
	case "SUBSCRIBE":
		var sub []byte
		for _, id := range c.unackedTasks {
			ti := str(nil, 1, id)
			ti = msg(ti, 2, idMsg(id))
			ti = msg(ti, 3, idMsg(""))
			sub = msg(sub, 1, ti)
		}
		for _, u := range c.unackedUpdates {
			sub = msg(sub, 2, msg(nil, 1, pbStatus(executorID, u)))
		}
		b = msg(b, 4, sub)
	case "UPDATE":
		b = msg(b, 5, msg(nil, 1, pbStatus(executorID, c.update)))
	case "MESSAGE":
		m := protowire.AppendTag(nil, 2, protowire.BytesType)
		b = msg(b, 6, protowire.AppendBytes(m, c.data))
	}
	return b
}

// fields walks one message, calling f for each field with its raw value.
func fields(b []byte, f func(num protowire.Number, v uint64, bs []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			f(num, v, nil)
			b = b[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			f(num, 0, v)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return nil
}

func idOf(b []byte) string {
	var s string
	_ = fields(b, func(num protowire.Number, _ uint64, bs []byte) {
		if num == 1 {
			s = string(bs)
		}
	})
	return s
}

func (protoCodec) decode(b []byte) (event, error) {
	var ev event
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	check(fields(b, func(num protowire.Number, v uint64, bs []byte) {
		switch num {
		case 1:
			ev.typ = eventTypes[v]
		case 3: // acknowledged
			check(fields(bs, func(n protowire.Number, _ uint64, x []byte) {
				switch n {
				case 1:
					ev.taskID = idOf(x)
				case 2:
					ev.uuid = append([]byte(nil), x...)
				}
			}))
		case 4: // launch
			check(fields(bs, func(n protowire.Number, _ uint64, x []byte) {
				if n != 1 {
					return
				}
				check(fields(x, func(n protowire.Number, _ uint64, y []byte) {
					switch n {
					case 2:
						ev.taskID = idOf(y)
					case 6:
						ev.taskData = append([]byte(nil), y...)
					}
				}))
			}))
		case 5: // kill
			check(fields(bs, func(n protowire.Number, _ uint64, x []byte) {
				if n == 1 {
					ev.taskID = idOf(x)
				}
			}))
		case 6: // message
			check(fields(bs, func(n protowire.Number, _ uint64, x []byte) {
				if n == 2 {
					ev.data = append([]byte(nil), x...)
				}
			}))
		case 7: // error
			check(fields(bs, func(n protowire.Number, _ uint64, x []byte) {
				if n == 1 {
					ev.errorMessage = string(x)
				}
			}))
		}
	}))
	return ev, errors.Join(errs...)
}
