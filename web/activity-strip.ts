// The activity histogram above the timeline: stored events per bucket of the available range, so
// a user sees where in the day things happened before scrubbing there.
import type { Activity } from './api.js';

export function drawActivity(canvas: HTMLCanvasElement, activity: Activity, position: number): void {
  const context = canvas.getContext('2d')!;
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  const most = Math.max(1, ...activity.buckets.map((b) => b.events));
  const barWidth = width / activity.buckets.length;
  context.fillStyle = '#3f6d96';
  activity.buckets.forEach((b, i) => {
    const barHeight = Math.max(b.events > 0 ? 1 : 0, (b.events / most) * (height - 2));
    context.fillRect(i * barWidth, height - barHeight, Math.max(1, barWidth - 1), barHeight);
  });
  // Where the replay is.
  const x = ((position - activity.from) / (activity.to - activity.from)) * width;
  context.fillStyle = '#ffb300';
  context.fillRect(Math.round(x) - 1, 0, 2, height);
}
