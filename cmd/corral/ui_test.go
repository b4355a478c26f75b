package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/corral-project/corral/core/master"
)

// The web UI in a real browser: headless Chromium (Debian's chromium
// package, which .ci/run installs) driven by chromedp against a live
// cluster of real binaries.

// chromium finds the browser, or fails: CI installs it, so a missing one
// is a broken environment, not a reason to skip.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found (apt-get install chromium): the web UI tests need a real browser")
	return ""
}

// artifactDir is where screenshots go: $CORRAL_UI_ARTIFACTS if set (kept
// after the run), else the test's temp dir.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("CORRAL_UI_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func TestWebUIInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a real browser against a cluster of real binaries")
	}
	browser := chromium(t)
	work := t.TempDir()
	addr, _ := startDevConfig(t, writeConfig(t, work, "master {\n  allocation_interval = \"100ms\"\n}\n"), filepath.Join(work, "dev"))

	// A task that says something and then keeps running, for the sandbox
	// viewer and the kill button.
	execCtx, cancelExec := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancelExec()
	var execOut struct {
		sync.Mutex
		code int
		err  string
	}
	execDone := make(chan struct{})
	go func() {
		defer close(execDone)
		cmd := exec.CommandContext(execCtx, filepath.Join(binDir(t), "corral"), "exec", "-master", addr, "-name", "ui-demo",
			"--", "sh", "-c", "echo hello-from-the-task; echo oops >&2; sleep 300")
		var errb strings.Builder
		cmd.Stderr = &errb
		err := cmd.Run()
		execOut.Lock()
		defer execOut.Unlock()
		execOut.code = cmd.ProcessState.ExitCode()
		if err != nil && execOut.code < 0 {
			execOut.err = err.Error()
		}
		execOut.err += errb.String()
	}()
	st := waitState(t, addr, "the demo task running", func(s master.State) bool {
		for _, f := range s.Frameworks {
			for _, tk := range f.Tasks {
				if tk.State == "TASK_RUNNING" {
					return true
				}
			}
		}
		return false
	})
	var fwID, taskID, agentID string
	for _, f := range st.Frameworks {
		for _, tk := range f.Tasks {
			fwID, taskID, agentID = f.ID, tk.ID, tk.AgentID
		}
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(work, "chromium")), chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelT()

	// Console errors and uncaught exceptions, collected while the test
	// clicks around.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	var mu sync.Mutex
	var consoleErrors []string
	go func() {
		for msg, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if msg.Type == chromedp.ConsoleError || msg.Type == chromedp.ConsoleException {
				mu.Lock()
				consoleErrors = append(consoleErrors, fmt.Sprintf("%s at %s:%d: %s", msg.Type, msg.URL, msg.Line, msg.Text))
				mu.Unlock()
			}
		}
	}()

	shots := artifactDir(t)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}
	// read stores an element's text.
	read := func(sel string, out *string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
			*out = s
			return err
		})
	}
	until := func(js string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(time.Minute))
	}
	// click finds and clicks in one evaluation in the page: the UI
	// re-renders as it polls the master, and a node found by one protocol
	// call can be gone by the next ("Could not find node with given id").
	click := func(sel string) chromedp.Action[chromedp.Void] {
		q, _ := json.Marshal(sel)
		return until(fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return false; e.click(); return true; })()`, q))
	}
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	base := "http://" + addr + "/"
	var overview, agents, agentPage, taskPage, viewer, usage, history, roles, allocatorPage, frameworks, tasks string
	run := func(name string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("UI step %s: %v\npage:\n%s", name, err, page)
		}
	}
	run("overview", chromedp.Navigate(base), visible(`svg.chart`), read("main", &overview), shot("overview"))
	run("agents", click(`nav a[data-page="agents"]`), visible(`main a[href^="#/agents/"]`), read("main", &agents), shot("agents"))
	run("agent", click(`main a[href^="#/agents/"]`), visible(`main a[href^="#/tasks/"]`), read("main", &agentPage), shot("agent"))
	run("task", click(`main a[href^="#/tasks/"]`), visible(`#kill`), read("main", &taskPage))
	run("stdout", until(`document.querySelector("#viewer-stdout") && document.querySelector("#viewer-stdout").textContent.includes("hello-from-the-task")`),
		read("#viewer-stdout", &viewer))
	// The task's measured usage, from its agent's isolator through the master.
	run("usage", until(`document.querySelector("#usage") && document.querySelector("#usage").textContent.includes("processes")`),
		read("#usage", &usage), shot("task"))
	run("stderr", click(`a[data-file="stderr"]`),
		until(`document.querySelector("#viewer-stderr") && document.querySelector("#viewer-stderr").textContent.includes("oops")`))
	run("kill", click(`#kill`), until(`document.querySelector("#kill-status").textContent === "kill sent"`))

	// The kill reached the task: the master sees it KILLED.
	waitState(t, addr, "the task killed from the UI", func(s master.State) bool {
		for _, f := range s.Frameworks {
			for _, tk := range f.Completed {
				if tk.ID == taskID && tk.State == "TASK_KILLED" {
					return true
				}
			}
		}
		for _, f := range s.CompletedFrameworks {
			for _, tk := range f.Completed {
				if tk.ID == taskID && tk.State == "TASK_KILLED" {
					return true
				}
			}
		}
		return false
	})
	<-execDone
	run("history", chromedp.Navigate(base+fmt.Sprintf("#/tasks/%s/%s", fwID, taskID)), chromedp.Reload(),
		until(`document.querySelector("main").textContent.includes("KILLED")`), read("main", &history), shot("task-killed"))
	run("frameworks", chromedp.Navigate(base+"#/frameworks"), chromedp.Reload(),
		until(`document.querySelector("main").textContent.includes("ui-demo")`), read("main", &frameworks), shot("frameworks"))
	run("tasks", chromedp.Navigate(base+"#/tasks?q="+taskID), chromedp.Reload(),
		until(`document.querySelectorAll("main tbody tr").length === 1`), read("main", &tasks), shot("tasks"))
	run("roles", chromedp.Navigate(base+"#/roles"), chromedp.Reload(), visible(`svg.chart`), read("main", &roles), shot("roles"))
	run("allocator", chromedp.Navigate(base+"#/allocator"), chromedp.Reload(),
		until(`document.querySelector("main").textContent.includes("Swap history")`), read("main", &allocatorPage), shot("allocator"))

	for _, c := range []struct{ page, text, want string }{
		{"overview", overview, "Capacity and allocation"},
		{"overview", overview, "drf"},
		{"agents", agents, agentID},
		{"agent", agentPage, taskID},
		{"task", taskPage, "ui-demo"},
		{"stdout viewer", viewer, "hello-from-the-task"},
		{"usage", usage, "cpu time"},
		{"usage", usage, "memory"},
		{"history", history, "KILLED"},
		{"frameworks", frameworks, "Completed"},
		{"tasks", tasks, taskID},
		{"roles", roles, "*"},
		{"allocator", allocatorPage, "corral-allocator-drf"},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("the %s page does not show %q:\n%s", c.page, c.want, c.text)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrors) > 0 {
		t.Errorf("the browser logged errors:\n%s", strings.Join(consoleErrors, "\n"))
	}
	execOut.Lock()
	defer execOut.Unlock()
	if execOut.code != 137 {
		t.Errorf("corral exec of the killed task exited %d (want 137, killed by someone else): %s", execOut.code, execOut.err)
	}
	t.Logf("screenshots in %s", shots)
}
