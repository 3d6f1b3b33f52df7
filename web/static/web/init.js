// Progressive enhancement only: conditional reveals, the header's menu. Every form also works without JavaScript.
import { initAll } from "./nhsuk/nhsuk-frontend.min.js";

initAll();
