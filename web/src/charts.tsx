// Watch time per day as a chart (Recharts). Its own chunk, loaded beside the screen's data, so a
// screen's numbers paint without waiting for the chart library.
import { Area, AreaChart, Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";

type Point = { date: string; watchTimeMinutes: number };

export default function WatchTimeChart({ data, bars = false }: { data: Point[]; bars?: boolean }) {
  const axes = [
    <CartesianGrid key="grid" strokeDasharray="3 3" />,
    <XAxis key="x" dataKey="date" tickFormatter={(v: string) => v.slice(5)} />,
    <YAxis key="y" />,
    <Tooltip key="tip" />,
  ];
  return (
    <ResponsiveContainer width="100%" height={260}>
      {bars ? (
        <BarChart data={data}>
          {axes}
          <Bar dataKey="watchTimeMinutes" name="minutes" fill="#0e7c86" />
        </BarChart>
      ) : (
        <AreaChart data={data}>
          {axes}
          <Area type="monotone" dataKey="watchTimeMinutes" name="minutes" stroke="#0e7c86" fill="#0e7c86" fillOpacity={0.2} />
        </AreaChart>
      )}
    </ResponsiveContainer>
  );
}
