package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
)

// WriteReports writes the runs of one trace (one per policy) to dir:
// results.json (everything), utilization.csv, shares.csv, jobs.csv,
// frameworks.csv, and the plots in format ("png" or "svg"). The files
// depend only on the runs, so the same inputs give the same bytes.
func WriteReports(dir string, runs []*Result, format string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	b, err := json.MarshalIndent(struct {
		Runs []*Result `json:"runs"`
	}{runs}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	tables := map[string][][]string{
		"utilization.csv": {{"policy", "t", "cpus", "mem"}},
		"shares.csv":      {{"policy", "t", "framework", "cpu_share", "dominant_share"}},
		"jobs.csv":        {{"policy", "framework", "job", "arrival_s", "start_s", "end_s", "completion_s", "tasks", "tasks_local"}},
		"frameworks.csv": {{"policy", "framework", "kind", "role", "jobs", "jobs_done", "sum_job_s", "mean_job_s", "p50_job_s",
			"p90_job_s", "max_job_s", "tasks", "tasks_killed", "locality", "offers", "declined", "rescinded", "inverse_offers",
			"max_wait_s", "mean_cpu_share"}},
	}
	for _, r := range runs {
		for _, s := range r.Samples {
			tables["utilization.csv"] = append(tables["utilization.csv"], []string{r.Policy, f64(s.T), f64(s.Util["cpus"]), f64(s.Util["mem"])})
			for _, fw := range r.Frameworks {
				tables["shares.csv"] = append(tables["shares.csv"], []string{r.Policy, f64(s.T), fw.Name, f64(s.Share[fw.Name]), f64(s.Dominant[fw.Name])})
			}
		}
		for _, j := range r.Jobs {
			tables["jobs.csv"] = append(tables["jobs.csv"], []string{r.Policy, j.Framework, j.Job, f64(j.ArrivalS), f64(j.StartS),
				f64(j.EndS), f64(j.CompletionS), strconv.Itoa(j.Tasks), strconv.Itoa(j.Local)})
		}
		for _, f := range r.Frameworks {
			loc := ""
			if f.Locality != nil {
				loc = f64(*f.Locality)
			}
			tables["frameworks.csv"] = append(tables["frameworks.csv"], []string{r.Policy, f.Name, f.Kind, f.Role,
				strconv.Itoa(f.Jobs), strconv.Itoa(f.JobsDone), f64(f.SumJobS), f64(f.MeanJobS), f64(f.P50JobS), f64(f.P90JobS),
				f64(f.MaxJobS), strconv.Itoa(f.Tasks), strconv.Itoa(f.Killed), loc, strconv.Itoa(f.Offers), strconv.Itoa(f.Declined),
				strconv.Itoa(f.Rescinded), strconv.Itoa(f.InverseOffers), f64(f.MaxWaitS), f64(f.MeanCPUShare)})
		}
	}
	for _, name := range sortedKeys(tables) {
		if err := writeCSV(filepath.Join(dir, name), tables[name]); err != nil {
			return err
		}
	}
	return writePlots(dir, runs, format)
}

func f64(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(rows); err != nil {
		f.Close()
		return fmt.Errorf("reports: %s: %w", path, err)
	}
	return f.Close()
}

// Summary prints the comparison table an operator reads before a swap:
// utilization per resource and the makespan per policy, then each
// framework's completion times, locality and longest wait.
func Summary(out io.Writer, runs []*Result) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "policy\tcpu util\tmem util\tmakespan s\tcycles\terrors\t")
	for _, r := range runs {
		fmt.Fprintf(w, "%s\t%.1f%%\t%.1f%%\t%.0f\t%d\t%d\t\n", r.Policy, 100*r.MeanUtil["cpus"], 100*r.MeanUtil["mem"], r.EndS,
			r.Cycles, len(r.Errors))
	}
	fmt.Fprintln(w, "\t\t\t\t\t\t")
	fmt.Fprintln(w, "framework\tpolicy\tjobs done\tsum job s\tmean job s\tp90 job s\tlocality\tmax wait s\toffers declined\t")
	if len(runs) == 0 {
		return w.Flush()
	}
	for i := range runs[0].Frameworks {
		for _, r := range runs {
			if i >= len(r.Frameworks) {
				continue
			}
			f := r.Frameworks[i]
			loc := "-"
			if f.Locality != nil {
				loc = fmt.Sprintf("%.1f%%", 100**f.Locality)
			}
			fmt.Fprintf(w, "%s\t%s\t%d/%d\t%.0f\t%.1f\t%.1f\t%s\t%.1f\t%d/%d\t\n", f.Name, r.Policy, f.JobsDone, f.Jobs, f.SumJobS,
				f.MeanJobS, f.P90JobS, loc, f.MaxWaitS, f.Declined, f.Offers)
		}
	}
	return w.Flush()
}
