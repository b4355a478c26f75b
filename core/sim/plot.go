package sim

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// writePlots draws utilization, shares and job completion times of every
// run on the same axes, one line per policy.
func writePlots(dir string, runs []*Result, format string) error {
	if format != "png" && format != "svg" {
		return fmt.Errorf("plot format %q: want png or svg", format)
	}
	var util [][]*plot.Plot
	for _, res := range []string{"cpus", "mem"} {
		p := newPlot(fmt.Sprintf("%s in use (fraction of the cluster)", res), "time (s)", "utilization")
		p.Y.Min, p.Y.Max = 0, 1
		for i, r := range runs {
			xy := make(plotter.XYs, len(r.Samples))
			for k, s := range r.Samples {
				xy[k] = plotter.XY{X: s.T, Y: s.Util[res]}
			}
			if err := addLine(p, i, r.Policy, xy); err != nil {
				return err
			}
		}
		util = append(util, []*plot.Plot{p})
	}
	if err := saveGrid(filepath.Join(dir, "utilization."+format), util, 20*vg.Centimeter, 16*vg.Centimeter); err != nil {
		return err
	}
	if len(runs) == 0 {
		return nil
	}
	shares := SharePlots(runs, func(s Sample, fw string) float64 { return s.Share[fw] }, "share of CPUs")
	if err := saveGrid(filepath.Join(dir, "shares."+format), shares, 20*vg.Centimeter, vg.Length(5*len(shares))*vg.Centimeter); err != nil {
		return err
	}
	p := newPlot("job completion times (all frameworks)", "completion time (s)", "fraction of jobs")
	p.Y.Min, p.Y.Max = 0, 1
	for i, r := range runs {
		var times []float64
		for _, j := range r.Jobs {
			if j.CompletionS >= 0 {
				times = append(times, j.CompletionS)
			}
		}
		sort.Float64s(times)
		xy := make(plotter.XYs, len(times))
		for k, v := range times {
			xy[k] = plotter.XY{X: v, Y: float64(k+1) / float64(len(times))}
		}
		if err := addLine(p, i, r.Policy, xy); err != nil {
			return err
		}
	}
	return saveGrid(filepath.Join(dir, "completion_cdf."+format), [][]*plot.Plot{{p}}, 20*vg.Centimeter, 12*vg.Centimeter)
}

// SharePlots is one panel per framework of the first run, a line per
// run: the Mesos paper's Figure 5 layout.
func SharePlots(runs []*Result, value func(Sample, string) float64, ylabel string) [][]*plot.Plot {
	var out [][]*plot.Plot
	for _, fw := range runs[0].Frameworks {
		p := newPlot(fw.Name, "time (s)", ylabel)
		p.Y.Min, p.Y.Max = 0, 1
		for i, r := range runs {
			xy := make(plotter.XYs, len(r.Samples))
			for k, s := range r.Samples {
				xy[k] = plotter.XY{X: s.T, Y: value(s, fw.Name)}
			}
			if err := addLine(p, i, r.Policy, xy); err != nil {
				continue
			}
		}
		out = append(out, []*plot.Plot{p})
	}
	return out
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// addLine adds series i with a color and dash pattern of its own.
func addLine(p *plot.Plot, i int, name string, xy plotter.XYs) error {
	if len(xy) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return fmt.Errorf("plot %s: %w", name, err)
	}
	l.Color = plotutil.Color(i)
	l.Dashes = plotutil.Dashes(i)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// saveGrid draws the plots as aligned tiles into one PNG or SVG file
// (by the path's extension).
func saveGrid(path string, plots [][]*plot.Plot, w, h vg.Length) error {
	var canvas vg.CanvasSizer
	var writeTo func(io.Writer) error
	switch filepath.Ext(path) {
	case ".svg":
		s := vgsvg.New(w, h)
		canvas = s
		writeTo = func(out io.Writer) error { _, err := s.WriteTo(out); return err }
	default:
		img := vgimg.New(w, h)
		canvas = img
		writeTo = func(out io.Writer) error { _, err := vgimg.PngCanvas{Canvas: img}.WriteTo(out); return err }
	}
	dc := draw.New(canvas)
	cols := 0
	if len(plots) > 0 {
		cols = len(plots[0])
	}
	tiles := draw.Tiles{Rows: len(plots), Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		for j := range plots[i] {
			if plots[i][j] != nil {
				plots[i][j].Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := writeTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return f.Close()
}
