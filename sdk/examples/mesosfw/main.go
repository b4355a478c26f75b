// Command mesosfw is a complete Mesos framework written only against the
// Mesos v1 scheduler HTTP API: it imports nothing from corral, so it runs
// unchanged against Apache Mesos or corral. It launches -tasks command
// tasks and, with -executor, -executor-tasks tasks on a custom executor
// (sdk/examples/mesosexec, fetched into the sandbox from the path or URL
// given) that it pings with a framework message and waits for the answer,
// acknowledges every update, and exits 0 when all have finished.
//
//	mesosfw -master 127.0.0.1:5050 -tasks 20 -encoding protobuf
//	mesosfw -tasks 20 -executor /path/to/mesosexec -executor-tasks 20
//
// Both encodings are hand-written here (encoding/json, and protowire for
// application/x-protobuf) to show how little a client needs.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func main() {
	master := flag.String("master", "127.0.0.1:5050", "master host:port")
	tasks := flag.Int("tasks", 20, "command tasks to run")
	encoding := flag.String("encoding", "json", "json or protobuf")
	command := flag.String("command", "echo hello from a Mesos framework", "shell command of every task")
	cpus := flag.Float64("cpus", 0.1, "cpus per task")
	mem := flag.Float64("mem", 32, "mem (MiB) per task")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	executor := flag.String("executor", "", "path or http(s) URL of the mesosexec custom executor (fetched into the sandbox)")
	execTasks := flag.Int("executor-tasks", 0, "tasks to run on the custom executor (needs -executor)")
	flag.Parse()
	var codec codec = jsonCodec{}
	if *encoding == "protobuf" {
		codec = protoCodec{}
	}
	fw := &framework{url: "http://" + *master + "/api/v1/scheduler", codec: codec, want: *tasks,
		command: *command, cpus: *cpus, mem: *mem, states: map[string]string{},
		executor: *executor, execWant: *execTasks, encoding: *encoding, execOn: map[string]bool{}}
	if fw.executor == "" {
		fw.execWant = 0
	}
	start := time.Now()
	if err := fw.run(*timeout); err != nil {
		fmt.Fprintln(os.Stderr, "mesosfw:", err)
		os.Exit(1)
	}
	fmt.Printf("mesosfw: %d tasks finished in %v (%s)\n", *tasks, time.Since(start).Round(time.Millisecond), *encoding)
	if fw.execWant > 0 {
		fmt.Printf("mesosfw: %d executor tasks finished; executor answered %q\n", fw.execWant, fw.pong)
	}
}

// The framework's own view of the API: what it sends and what it reads.
type offer struct {
	id, agentID string
	cpus, mem   float64
}

type taskSpec struct {
	id, agentID string
	onExecutor  bool // run by the custom executor, not a command
	newExecutor bool // this task starts the executor: its resources come too
}

type update struct {
	taskID, agentID, state, message string
	uuid                            []byte
}

type event struct {
	typ         string
	frameworkID string
	offers      []offer
	update      *update
	message     string
	// MESSAGE from an executor
	agentID, executorID string
	data                []byte
}

type call struct {
	typ         string
	frameworkID string
	name        string     // SUBSCRIBE
	offerIDs    []string   // ACCEPT, DECLINE
	launch      []taskSpec // ACCEPT
	refuse      float64    // ACCEPT, DECLINE
	ack         *update    // ACKNOWLEDGE
	command     string     // ACCEPT
	cpus, mem   float64    // ACCEPT
	executor    string     // ACCEPT: the executor's fetch URI
	encoding    string     // ACCEPT: the executor's encoding flag
	agentID     string     // MESSAGE
	data        []byte     // MESSAGE
}

// executorID is the custom executor's ID on every agent.
const executorID = "mesosexec"

// execCPUs, execMem are the custom executor's own resources.
const execCPUs, execMem = 0.1, 32.0

type codec interface {
	contentType() string
	encode(call) []byte
	decode([]byte) (event, error)
}

type framework struct {
	url      string
	codec    codec
	want     int
	command  string
	cpus     float64
	mem      float64
	id       string
	streamID string
	launched int
	states   map[string]string
	// The custom executor: where to fetch it, its tasks, the agents it
	// runs on, and its answer to our ping.
	executor     string
	execWant     int
	execLaunched int
	encoding     string
	execOn       map[string]bool
	pinged       bool
	pong         string
}

func (f *framework) run(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	body := f.codec.encode(call{typ: "SUBSCRIBE", name: "mesosfw"})
	req, err := http.NewRequest(http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", f.codec.contentType())
	req.Header.Set("Accept", f.codec.contentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("subscribe: %s: %s", resp.Status, b)
	}
	f.streamID = resp.Header.Get("Mesos-Stream-Id")
	events := make(chan event)
	errc := make(chan error, 1)
	go func() {
		r := bufio.NewReader(resp.Body)
		for {
			rec, err := readRecord(r)
			if err != nil {
				errc <- err
				return
			}
			ev, err := f.codec.decode(rec)
			if err != nil {
				errc <- err
				return
			}
			events <- ev
		}
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("event stream: %w", err)
		case <-timer.C:
			return fmt.Errorf("timed out with task states %v", f.states)
		case ev := <-events:
			done, err := f.handle(ev)
			if err != nil {
				return err
			}
			if done {
				return f.send(call{typ: "TEARDOWN"})
			}
		}
	}
}

func (f *framework) handle(ev event) (bool, error) {
	switch ev.typ {
	case "SUBSCRIBED":
		f.id = ev.frameworkID
	case "ERROR":
		return false, fmt.Errorf("master says: %s", ev.message)
	case "OFFERS":
		for _, o := range ev.offers {
			var tasks []taskSpec
			cpus, mem := o.cpus, o.mem
			for f.launched < f.want && cpus >= f.cpus && mem >= f.mem {
				tasks = append(tasks, taskSpec{id: "task-" + strconv.Itoa(f.launched), agentID: o.agentID})
				f.states[tasks[len(tasks)-1].id] = "TASK_STAGING"
				f.launched++
				cpus -= f.cpus
				mem -= f.mem
			}
			for f.execLaunched < f.execWant {
				needCPU, needMem := f.cpus, f.mem
				starts := !f.execOn[o.agentID]
				if starts {
					needCPU, needMem = needCPU+execCPUs, needMem+execMem
				}
				if cpus < needCPU || mem < needMem {
					break
				}
				tasks = append(tasks, taskSpec{id: "xtask-" + strconv.Itoa(f.execLaunched), agentID: o.agentID, onExecutor: true, newExecutor: starts})
				f.states[tasks[len(tasks)-1].id] = "TASK_STAGING"
				f.execOn[o.agentID] = true
				f.execLaunched++
				cpus -= needCPU
				mem -= needMem
			}
			c := call{typ: "DECLINE", offerIDs: []string{o.id}, refuse: 1}
			if len(tasks) > 0 {
				c = call{typ: "ACCEPT", offerIDs: []string{o.id}, launch: tasks, command: f.command, cpus: f.cpus, mem: f.mem, refuse: 1,
					executor: f.executor, encoding: f.encoding}
			}
			if err := f.send(c); err != nil {
				return false, err
			}
		}
	case "UPDATE":
		u := ev.update
		f.states[u.taskID] = u.state
		if len(u.uuid) > 0 {
			if err := f.send(call{typ: "ACKNOWLEDGE", ack: u}); err != nil {
				return false, err
			}
		}
		switch u.state {
		case "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED":
		default:
			return false, fmt.Errorf("task %s: %s: %s", u.taskID, u.state, u.message)
		}
		if u.state == "TASK_RUNNING" && strings.HasPrefix(u.taskID, "xtask-") && !f.pinged {
			// Framework messages both ways: ping the executor, it answers.
			f.pinged = true
			if err := f.send(call{typ: "MESSAGE", agentID: u.agentID, data: []byte("ping:" + u.taskID)}); err != nil {
				return false, err
			}
		}
		return f.done(), nil
	case "MESSAGE":
		if ev.executorID == executorID && strings.HasPrefix(string(ev.data), "pong:") {
			f.pong = string(ev.data)
		}
		return f.done(), nil
	}
	return false, nil
}

// done: every task finished, and the executor answered our ping.
func (f *framework) done() bool {
	finished := 0
	for _, s := range f.states {
		if s == "TASK_FINISHED" {
			finished++
		}
	}
	return finished == f.want+f.execWant && (f.execWant == 0 || f.pong != "")
}

func (f *framework) send(c call) error {
	c.frameworkID = f.id
	req, err := http.NewRequest(http.MethodPost, f.url, bytes.NewReader(f.codec.encode(c)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", f.codec.contentType())
	req.Header.Set("Mesos-Stream-Id", f.streamID)
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

func scalar(name string, v float64) map[string]any {
	return map[string]any{"name": name, "type": "SCALAR", "scalar": map[string]any{"value": v}}
}

func (jsonCodec) encode(c call) []byte {
	m := map[string]any{"type": c.typ}
	if c.frameworkID != "" {
		m["framework_id"] = value{c.frameworkID}
	}
	ids := func() []value {
		var out []value
		for _, id := range c.offerIDs {
			out = append(out, value{id})
		}
		return out
	}
	switch c.typ {
	case "SUBSCRIBE":
		m["subscribe"] = map[string]any{"framework_info": map[string]any{"user": "root", "name": c.name}}
	case "DECLINE":
		m["decline"] = map[string]any{"offer_ids": ids(), "filters": map[string]any{"refuse_seconds": c.refuse}}
	case "ACCEPT":
		var tasks []any
		for _, t := range c.launch {
			ti := map[string]any{"name": t.id, "task_id": value{t.id}, "agent_id": value{t.agentID},
				"resources": []any{scalar("cpus", c.cpus), scalar("mem", c.mem)}}
			if t.onExecutor {
				ti["executor"] = map[string]any{"type": "CUSTOM", "executor_id": value{executorID}, "name": "mesosexec",
					"command": map[string]any{"value": "./mesosexec -encoding " + c.encoding,
						"uris": []any{map[string]any{"value": c.executor, "executable": true}}},
					"resources": []any{scalar("cpus", execCPUs), scalar("mem", execMem)}}
				ti["data"] = []byte("echo ran " + t.id)
			} else {
				ti["command"] = map[string]any{"value": c.command}
			}
			tasks = append(tasks, ti)
		}
		m["accept"] = map[string]any{"offer_ids": ids(), "filters": map[string]any{"refuse_seconds": c.refuse},
			"operations": []any{map[string]any{"type": "LAUNCH", "launch": map[string]any{"task_infos": tasks}}}}
	case "ACKNOWLEDGE":
		m["acknowledge"] = map[string]any{"agent_id": value{c.ack.agentID}, "task_id": value{c.ack.taskID}, "uuid": c.ack.uuid}
	case "MESSAGE":
		m["message"] = map[string]any{"agent_id": value{c.agentID}, "executor_id": value{executorID}, "data": c.data}
	}
	b, _ := json.Marshal(m) // []byte marshals as standard Base64, as Mesos wants
	return b
}

func (jsonCodec) decode(b []byte) (event, error) {
	var raw struct {
		Type       string `json:"type"`
		Subscribed struct {
			FrameworkID value `json:"framework_id"`
		} `json:"subscribed"`
		Offers struct {
			Offers []struct {
				ID        value `json:"id"`
				AgentID   value `json:"agent_id"`
				Resources []struct {
					Name   string `json:"name"`
					Scalar struct {
						Value float64 `json:"value"`
					} `json:"scalar"`
				} `json:"resources"`
			} `json:"offers"`
		} `json:"offers"`
		Update struct {
			Status struct {
				TaskID  value  `json:"task_id"`
				AgentID value  `json:"agent_id"`
				State   string `json:"state"`
				Message string `json:"message"`
				UUID    []byte `json:"uuid"`
			} `json:"status"`
		} `json:"update"`
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Message struct {
			AgentID    value  `json:"agent_id"`
			ExecutorID value  `json:"executor_id"`
			Data       []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return event{}, fmt.Errorf("event %q: %w", b, err)
	}
	ev := event{typ: raw.Type, frameworkID: raw.Subscribed.FrameworkID.Value, message: raw.Error.Message,
		agentID: raw.Message.AgentID.Value, executorID: raw.Message.ExecutorID.Value, data: raw.Message.Data}
	for _, o := range raw.Offers.Offers {
		of := offer{id: o.ID.Value, agentID: o.AgentID.Value}
		for _, r := range o.Resources {
			switch r.Name {
			case "cpus":
				of.cpus += r.Scalar.Value
			case "mem":
				of.mem += r.Scalar.Value
			}
		}
		ev.offers = append(ev.offers, of)
	}
	if raw.Type == "UPDATE" {
		s := raw.Update.Status
		ev.update = &update{taskID: s.TaskID.Value, agentID: s.AgentID.Value, state: s.State, message: s.Message, uuid: s.UUID}
	}
	return ev, nil
}

// ---- protobuf (field numbers from mesos/v1/scheduler/scheduler.proto and mesos/v1/mesos.proto)

type protoCodec struct{}

func (protoCodec) contentType() string { return "application/x-protobuf" }

var callTypes = map[string]uint64{"SUBSCRIBE": 1, "TEARDOWN": 2, "ACCEPT": 3, "DECLINE": 4, "ACKNOWLEDGE": 8, "MESSAGE": 10}

func msg(b []byte, num protowire.Number, inner []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

func str(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func idMsg(v string) []byte { return str(nil, 1, v) }

func double(b []byte, num protowire.Number, v float64) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}

func pbScalar(name string, v float64) []byte {
	r := str(nil, 1, name)
	r = protowire.AppendTag(r, 2, protowire.VarintType)
	r = protowire.AppendVarint(r, 0) // SCALAR
	return msg(r, 3, double(nil, 1, v))
}

func (protoCodec) encode(c call) []byte {
	var b []byte
	if c.frameworkID != "" {
		b = msg(b, 1, idMsg(c.frameworkID))
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, callTypes[c.typ])
	filters := double(nil, 1, c.refuse)
	switch c.typ {
	case "SUBSCRIBE":
		fi := str(str(nil, 1, "root"), 2, c.name)
		b = msg(b, 3, msg(nil, 1, fi))
	case "DECLINE":
		var d []byte
		for _, id := range c.offerIDs {
			d = msg(d, 1, idMsg(id))
		}
		b = msg(b, 5, msg(d, 2, filters))
	case "ACCEPT":
		var launch []byte
		for _, t := range c.launch {
			ti := str(nil, 1, t.id)
			ti = msg(ti, 2, idMsg(t.id))
			ti = msg(ti, 3, idMsg(t.agentID))
			ti = msg(ti, 4, pbScalar("cpus", c.cpus))
			ti = msg(ti, 4, pbScalar("mem", c.mem))
			if t.onExecutor {
				uri := str(nil, 1, c.executor)
				uri = protowire.AppendTag(uri, 2, protowire.VarintType)
				uri = protowire.AppendVarint(uri, 1) // executable
				cmd := msg(nil, 1, uri)
				cmd = str(cmd, 3, "./mesosexec -encoding "+c.encoding)
				ei := msg(nil, 1, idMsg(executorID))
				ei = msg(ei, 5, pbScalar("cpus", execCPUs))
				ei = msg(ei, 5, pbScalar("mem", execMem))
				ei = msg(ei, 7, cmd)
				ei = str(ei, 9, "mesosexec")
				ei = protowire.AppendTag(ei, 15, protowire.VarintType)
				ei = protowire.AppendVarint(ei, 2) // CUSTOM
				ti = msg(ti, 5, ei)
				ti = str(ti, 6, "echo ran "+t.id) // data
			} else {
				ti = msg(ti, 7, str(nil, 3, c.command))
			}
			launch = msg(launch, 1, ti)
		}
		op := protowire.AppendTag(nil, 1, protowire.VarintType)
		op = protowire.AppendVarint(op, 1) // LAUNCH
		op = msg(op, 2, launch)
		var a []byte
		for _, id := range c.offerIDs {
			a = msg(a, 1, idMsg(id))
		}
		a = msg(a, 2, op)
		b = msg(b, 4, msg(a, 3, filters))
	case "ACKNOWLEDGE":
		a := msg(nil, 1, idMsg(c.ack.agentID))
		a = msg(a, 2, idMsg(c.ack.taskID))
		a = protowire.AppendTag(a, 3, protowire.BytesType)
		a = protowire.AppendBytes(a, c.ack.uuid)
		b = msg(b, 8, a)
	case "MESSAGE":
		m := msg(nil, 1, idMsg(c.agentID))
		m = msg(m, 2, idMsg(executorID))
		m = protowire.AppendTag(m, 3, protowire.BytesType)
		m = protowire.AppendBytes(m, c.data)
		b = msg(b, 10, m)
	}
	return b
}

var eventTypes = map[uint64]string{1: "SUBSCRIBED", 2: "OFFERS", 3: "RESCIND", 4: "UPDATE", 5: "MESSAGE", 6: "FAILURE",
	7: "ERROR", 8: "HEARTBEAT", 9: "INVERSE_OFFERS", 10: "RESCIND_INVERSE_OFFER"}

var taskStates = map[uint64]string{6: "TASK_STAGING", 0: "TASK_STARTING", 1: "TASK_RUNNING", 8: "TASK_KILLING", 2: "TASK_FINISHED",
	3: "TASK_FAILED", 4: "TASK_KILLED", 7: "TASK_ERROR", 5: "TASK_LOST", 9: "TASK_DROPPED", 10: "TASK_UNREACHABLE",
	11: "TASK_GONE", 12: "TASK_GONE_BY_OPERATOR", 13: "TASK_UNKNOWN"}

// fields walks one message, calling f for each field with its raw value:
// the varint, the fixed64, or the bytes of a length-delimited field.
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
		case protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
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
		case 2: // subscribed
			check(fields(bs, func(n protowire.Number, _ uint64, x []byte) {
				if n == 1 {
					ev.frameworkID = idOf(x)
				}
			}))
		case 3: // offers
			check(fields(bs, func(n protowire.Number, _ uint64, x []byte) {
				if n != 1 {
					return
				}
				var o offer
				check(fields(x, func(n protowire.Number, _ uint64, y []byte) {
					switch n {
					case 1:
						o.id = idOf(y)
					case 3:
						o.agentID = idOf(y)
					case 5:
						var name string
						var val float64
						check(fields(y, func(n protowire.Number, _ uint64, z []byte) {
							switch n {
							case 1:
								name = string(z)
							case 3:
								check(fields(z, func(n protowire.Number, w uint64, _ []byte) {
									if n == 1 {
										val = math.Float64frombits(w)
									}
								}))
							}
						}))
						switch name {
						case "cpus":
							o.cpus += val
						case "mem":
							o.mem += val
						}
					}
				}))
				ev.offers = append(ev.offers, o)
			}))
		case 5: // update
			check(fields(bs, func(n protowire.Number, _ uint64, x []byte) {
				if n != 1 {
					return
				}
				u := &update{}
				check(fields(x, func(n protowire.Number, w uint64, y []byte) {
					switch n {
					case 1:
						u.taskID = idOf(y)
					case 2:
						u.state = taskStates[w]
					case 4:
						u.message = string(y)
					case 5:
						u.agentID = idOf(y)
					case 11:
						u.uuid = append([]byte(nil), y...)
					}
				}))
				ev.update = u
			}))
		case 8: // error
			check(fields(bs, func(n protowire.Number, _ uint64, x []byte) {
				if n == 1 {
					ev.message = string(x)
				}
			}))
		case 6: // message
			check(fields(bs, func(n protowire.Number, _ uint64, x []byte) {
				switch n {
				case 1:
					ev.agentID = idOf(x)
				case 2:
					ev.executorID = idOf(x)
				case 3:
					ev.data = append([]byte(nil), x...)
				}
			}))
		}
	}))
	return ev, errors.Join(errs...)
}
