// The console's live parts, on top of pages that work without them: the table of modules
// fetches its rows again every two seconds (GET /admin/modules/rows with the page's filters)
// and swaps them in when they changed, unless a control inside it has the focus; buttons with
// data-copy copy the text of the element they name.
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  if (live) {
    var busy = false;
    window.setInterval(function () {
      if (busy || document.hidden || live.contains(document.activeElement)) {
        return;
      }
      busy = true;
      fetch(live.getAttribute("data-live"), { credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 401) {
            window.location.reload();
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== live.innerHTML) {
            live.innerHTML = html;
            var stamp = document.getElementById("refreshed");
            if (stamp) {
              stamp.textContent = "Updated " + new Date().toLocaleTimeString();
            }
          }
        })
        .catch(function () {})
        .then(function () {
          busy = false;
        });
    }, 2000);
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-copy]"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      var text = source.value || source.textContent;
      var done = function () {
        button.textContent = "Copied";
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done);
      } else {
        source.select();
        document.execCommand("copy");
        done();
      }
    });
  });
})();
