// Exits 0 once the broker at args[0] answers a metadata request (describeCluster), 1 otherwise.
// Run as a single-file source program on the broker's own classpath: java -cp 'libs/*' Ready.java HOST:PORT
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

public class Ready {
  public static void main(String[] args) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "2000");
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "3000");
    long deadline = System.currentTimeMillis() + Long.parseLong(args.length > 1 ? args[1] : "60000");
    try (Admin admin = Admin.create(p)) {
      while (System.currentTimeMillis() < deadline) {
        try {
          int nodes = admin.describeCluster().nodes().get(3, TimeUnit.SECONDS).size();
          if (nodes > 0) { System.exit(0); }
        } catch (Exception e) {
          try { Thread.sleep(250); } catch (InterruptedException ie) { break; }
        }
      }
    }
    System.exit(1);
  }
}
