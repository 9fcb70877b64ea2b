/* recsite admin: training progress that refreshes itself, and the rule Preview button.
   Plain JavaScript, no library; pages work without it (noscript refresh, form target). */
(function () {
  "use strict";

  function followTraining(box) {
    var url = box.getAttribute("data-progress-url");
    var bar = box.querySelector(".rs-progress > span");
    var meter = box.querySelector(".rs-progress");
    var stage = box.querySelector(".rs-stage");
    var percent = box.querySelector(".rs-percent");
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (data) {
          bar.style.width = data.percent + "%";
          meter.setAttribute("aria-valuenow", String(Math.round(data.percent)));
          stage.textContent = data.stage || data.status;
          percent.textContent = String(Math.round(data.percent));
          box.setAttribute("data-status", data.status);
          if (data.in_flight) {
            window.setTimeout(poll, 1500);
          } else {
            window.location.reload(); // finished: show metrics, charts and the status
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  }

  function previewRules(button) {
    var target = document.getElementById("rs-rule-preview");
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var form = button.form;
      var data = new FormData(form);
      target.innerHTML = '<p class="rs-muted">Computing the preview…</p>';
      fetch(button.getAttribute("data-preview-url"), {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRFToken": data.get("csrfmiddlewaretoken") || "" },
      })
        .then(function (response) { return response.text(); })
        .then(function (html) { target.innerHTML = html; })
        .catch(function (error) {
          target.innerHTML = '<p class="errornote">Preview failed: ' + String(error) + "</p>";
        });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("rs-training-progress");
    if (box && box.getAttribute("data-progress-url")) {
      followTraining(box);
    }
    var button = document.getElementById("rs-preview-button");
    if (button) {
      previewRules(button);
    }
  });
})();
