// voxelhub dashboard, admin and jobs pages: confirmation dialogs and team checkboxes.
// Without JavaScript the server asks on a page of its own, and nothing is lost.
(function () {
  "use strict";

  let dialog = null;

  function confirmDialog() {
    if (dialog) return dialog;
    dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-dialog-title");
    dialog.setAttribute("aria-describedby", "confirm-dialog-message");
    const title = document.createElement("h2");
    title.id = "confirm-dialog-title";
    const message = document.createElement("p");
    message.id = "confirm-dialog-message";
    const form = document.createElement("form");
    form.method = "dialog";
    const keep = document.createElement("button");
    keep.type = "submit";
    keep.value = "keep";
    keep.className = "button";
    keep.textContent = "Keep it";
    const go = document.createElement("button");
    go.type = "submit";
    go.value = "confirm";
    go.className = "button button-danger";
    form.append(keep, go);
    dialog.append(title, message, form);
    document.body.append(dialog);
    return dialog;
  }

  // Asks with a modal dialog (Escape and "Keep it" say no); resolves true or false.
  function ask(text, label) {
    const box = confirmDialog();
    const [title, message] = box.querySelectorAll("h2, p");
    const sentences = text.match(/^[^?]*\?/);
    title.textContent = sentences ? sentences[0] : text;
    message.textContent = sentences ? text.slice(sentences[0].length).trim() : "";
    message.hidden = !message.textContent;
    box.querySelector('button[value="confirm"]').textContent = label || "Confirm";
    box.returnValue = "";
    return new Promise((resolve) => {
      box.addEventListener("close", () => resolve(box.returnValue === "confirm"), { once: true });
      box.showModal();
      box.querySelector('button[value="keep"]').focus();
    });
  }

  // Forms with data-confirm: ask first; the answer travels as confirmed=yes, which
  // the server needs (it shows its own confirmation page otherwise). Registered in
  // the capture phase so htmx sees only confirmed submissions.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
    const field = form.elements.namedItem("confirmed");
    if (field && field.value === "yes") return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const opener = event.submitter || form.querySelector("button[type=submit]");
    ask(form.dataset.confirm, form.dataset.confirmLabel).then((yes) => {
      if (!yes || !form.isConnected) {
        if (opener && opener.isConnected) opener.focus();
        return;
      }
      if (field) field.value = "yes";
      form.requestSubmit();
      // A later submission (htmx keeps the page) must ask again.
      if (field) setTimeout(() => { field.value = ""; }, 0);
    });
  }, true);

  // A team's manager is a member too: ticking "manager" ticks "member", unticking
  // "member" unticks "manager".
  document.addEventListener("change", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement)) return;
    const managed = box.dataset.teamManager;
    if (managed && box.checked) {
      const member = document.querySelector(`[data-team-member="${managed}"]`);
      if (member) member.checked = true;
    }
    const joined = box.dataset.teamMember;
    if (joined && !box.checked) {
      const manager = document.querySelector(`[data-team-manager="${joined}"]`);
      if (manager) manager.checked = false;
    }
  });
})();
