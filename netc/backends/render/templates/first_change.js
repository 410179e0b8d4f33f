// open each diagram at its first marked box (a deep network's first change is far down)
for (const side of document.querySelectorAll(".side")) {
  const first = side.querySelector("g[data-mark]");
  if (!first) continue;
  const box = first.getBoundingClientRect(), view = side.getBoundingClientRect();
  side.scrollTop += box.top - view.top - view.height / 3;
  side.scrollLeft += box.left - view.left - Math.max(0, (view.width - box.width) / 2);
}
