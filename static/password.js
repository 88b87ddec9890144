// Password fields: a strength meter (guidance only; the server decides) and "Show password".
(function () {
  function score(value) {
    if (!value) return 0;
    var classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter(function (r) {
      return r.test(value);
    }).length;
    var words = value.trim().split(/\s+/).length;
    var bits = value.length * Math.log2(Math.min(95, 10 + classes * 20)) * (words > 2 ? 1.2 : 1);
    if (/^(.)\1+$/.test(value)) bits = 4;
    return bits < 40 ? 1 : bits < 60 ? 2 : bits < 80 ? 3 : 4;
  }
  var labels = ["", "Weak", "Fair", "Good", "Strong"];
  document.querySelectorAll("input[data-strength-meter]").forEach(function (input) {
    var box = input.form.querySelector(".strength");
    if (!box) return;
    var meter = box.querySelector("meter"), text = box.querySelector("span");
    input.addEventListener("input", function () {
      var s = score(input.value);
      box.hidden = !input.value;
      meter.value = s;
      text.textContent = labels[s];
    });
  });
  document.querySelectorAll("input[data-show-password]").forEach(function (toggle) {
    toggle.addEventListener("change", function () {
      toggle.form.querySelectorAll("input[name=password]").forEach(function (field) {
        field.type = toggle.checked ? "text" : "password";
      });
    });
  });
})();
