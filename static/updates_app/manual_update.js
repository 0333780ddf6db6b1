// Manual Update: ticking in the tree means "manually selected clients".
(function () {
  "use strict";
  var tree = document.getElementById("tree-form");
  if (!tree) {
    return;
  }
  tree.addEventListener("change", function (event) {
    if (event.target.classList.contains("tree-check") && event.target.checked) {
      document.getElementById("id_target_1").checked = true;
    }
  });
})();
