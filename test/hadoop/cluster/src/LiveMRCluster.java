// A real Hadoop cluster for LiveMR's tests, in one JVM: MiniDFSCluster (NameNode + DataNodes) and
// MiniMRYarnCluster (ResourceManager, NodeManagers, JobHistoryServer), from Maven Central's Hadoop
// test jars (test/hadoop/cluster/pom.xml). Started by test/hadoop/cluster.ts, which runs it as an
// unprivileged user (containers run as the NodeManager's user) and on loopback (a hosts file maps
// this host's name to 127.0.0.1).
//
//   java LiveMRCluster WORKDIR NODEMANAGERS [key=value ...]
//
// Writes the live client configuration (real ports) to WORKDIR/conf/{core,hdfs,yarn,mapred}-site.xml,
// prints one line "LIVEMR-CLUSTER-READY {json}" and runs until its stdin closes; then it stops the
// clusters (the NodeManagers kill their containers) and exits. So the cluster cannot outlive the
// test process that started it.
import java.io.File;
import java.io.FileOutputStream;
import java.io.OutputStream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.mapreduce.v2.MiniMRYarnCluster;
import org.apache.hadoop.yarn.api.records.NodeReport;
import org.apache.hadoop.yarn.api.records.NodeState;
import org.apache.hadoop.yarn.client.api.YarnClient;
import org.apache.hadoop.yarn.conf.YarnConfiguration;

public class LiveMRCluster {
  public static void main(String[] args) throws Exception {
    File work = new File(args[0]).getAbsoluteFile();
    int nms = Integer.parseInt(args[1]);
    Configuration conf = new YarnConfiguration();
    for (int i = 2; i < args.length; i++) {
      int eq = args[i].indexOf('=');
      conf.set(args[i].substring(0, eq), args[i].substring(eq + 1));
    }
    conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, new File(work, "dfs").getPath());
    MiniDFSCluster dfs = new MiniDFSCluster.Builder(conf).numDataNodes(1).format(true).build();
    dfs.waitActive();
    conf.set("fs.defaultFS", dfs.getURI().toString());
    MiniMRYarnCluster yarn = new MiniMRYarnCluster("livemr", nms);
    Thread stopper = new Thread(() -> {
      try { yarn.stop(); } catch (Throwable t) { t.printStackTrace(); }
      try { dfs.shutdown(); } catch (Throwable t) { t.printStackTrace(); }
    });
    Runtime.getRuntime().addShutdownHook(stopper);
    yarn.init(conf);
    yarn.start();
    Configuration live = yarn.getConfig();

    // wait until every NodeManager has registered, and name them
    YarnClient yc = YarnClient.createYarnClient();
    yc.init(live);
    yc.start();
    StringBuilder nodes = new StringBuilder();
    for (int tries = 0; ; tries++) {
      java.util.List<NodeReport> rs = yc.getNodeReports(NodeState.RUNNING);
      if (rs.size() >= nms) {
        for (NodeReport r : rs) {
          if (nodes.length() > 0) nodes.append(',');
          nodes.append('"').append(r.getNodeId().toString()).append('"');
        }
        break;
      }
      if (tries > 600) throw new IllegalStateException("NodeManagers did not register");
      Thread.sleep(100);
    }
    yc.stop();

    File confDir = new File(work, "conf");
    confDir.mkdirs();
    for (String f : new String[] {"core-site.xml", "hdfs-site.xml", "yarn-site.xml", "mapred-site.xml"}) {
      // the whole live configuration in each file: a later *-default.xml must not override it
      try (OutputStream o = new FileOutputStream(new File(confDir, f))) { live.writeXml(o); }
    }
    System.out.println("LIVEMR-CLUSTER-READY {\"fs\":\"" + dfs.getURI() + "\",\"rm\":\"" + live.get(YarnConfiguration.RM_ADDRESS)
        + "\",\"jhsWeb\":\"" + live.get("mapreduce.jobhistory.webapp.address") + "\",\"rmWeb\":\"" + live.get(YarnConfiguration.RM_WEBAPP_ADDRESS)
        + "\",\"nodes\":[" + nodes + "]}");
    System.out.flush();
    // run until the test process closes our stdin (or dies)
    while (System.in.read() >= 0) { }
    System.exit(0); // the shutdown hook stops YARN, then HDFS
  }
}
