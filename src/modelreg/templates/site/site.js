// Filter a table's rows by the text typed in the search box that names it (data-table).
document.querySelectorAll("input.filter").forEach((box) => {
  const table = document.getElementById(box.dataset.table);
  if (!table) return;
  box.addEventListener("input", () => {
    const wanted = box.value.toLowerCase();
    table.querySelectorAll("tbody tr").forEach((row) => {
      row.hidden = wanted !== "" && !row.textContent.toLowerCase().includes(wanted);
    });
  });
});
document.body.dataset.ready = "yes";
